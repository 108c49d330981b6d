//! The live progress line on stderr, one update per second, as an engine observer.
//!
//! The observer runs on the engine's collector task, so it never writes itself: it hands the
//! rendered line to a writer thread through a one-slot channel and drops the line when the
//! previous one is still being written. A stalled stderr (a full pipe nobody reads) then costs
//! skipped updates, never a delayed collector or growing memory.

use std::io::IsTerminal as _;
use std::time::Duration;

use loadkit_core::{Control, Event, Observer, Phase};

use crate::stderr::StderrLines;

/// Prints elapsed time, request rate, in-flight, ok/failed and the last 10 s TTFT p50/p95 (E2E
/// p50 for requests without text, such as speech).
pub(crate) struct LiveLine {
    tty: bool,
    planned: Option<Duration>,
    /// One slot: a line the writer has not taken yet makes the next one skipped.
    lines: StderrLines,
}

impl LiveLine {
    pub(crate) fn new(planned: Option<Duration>) -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            tty,
            planned,
            lines: StderrLines::new("loadkit-live", 1, tty),
        }
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e3),
    )
}

impl Observer for LiveLine {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        let Event::Tick(live) = event else {
            return Control::Continue;
        };
        let phase = match live.phase {
            Some(Phase::Warmup) => " warm-up",
            Some(Phase::Draining) => " draining",
            _ => "",
        };
        let of = self
            .planned
            .map_or_else(String::new, |p| format!("/{}s", p.as_secs()));
        let missed = if live.missed > 0 {
            format!(" · missed {}", live.missed)
        } else {
            String::new()
        };
        // Requests without text (speech sessions, uploads) have no tokens and no TTFT: their
        // duration is what moves.
        let textless = live.ttft_p50.is_none() && live.output_tokens_per_s == 0.0;
        let line = if textless && live.e2e_p50.is_some() {
            format!(
                "[{:>4}s{of}{phase}] {:>7.1} req/s · in flight {:>4} · ok {} · failed {}{missed} · E2E p50 {} ms (last {}s)",
                live.elapsed.as_secs(),
                live.completed_per_s,
                live.in_flight,
                live.succeeded,
                live.failed,
                ms(live.e2e_p50),
                live.window.as_secs(),
            )
        } else {
            format!(
                "[{:>4}s{of}{phase}] {:>7.1} req/s · {:>7.0} tok/s · in flight {:>4} · ok {} · failed {}{missed} · TTFT p50 {} p95 {} ms (last {}s)",
                live.elapsed.as_secs(),
                live.completed_per_s,
                live.output_tokens_per_s,
                live.in_flight,
                live.succeeded,
                live.failed,
                ms(live.ttft_p50),
                ms(live.ttft_p95),
                live.window.as_secs(),
            )
        };
        // Not taken: the writer is still busy with an earlier line; this one is skipped.
        let _ = self.lines.send(line);
        Control::Continue
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        // Let the last line out (bounded, see `StderrLines`), then end it on a terminal.
        self.lines.finish();
        if self.tty {
            eprintln!();
        }
    }
}
