//! The live progress line on stderr, one update per second, as an engine observer.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use loadkit_core::{Control, Event, Observer, Phase};

/// Prints elapsed time, request rate, in-flight, ok/failed and the last 10 s TTFT p50/p95.
pub(crate) struct LiveLine {
    tty: bool,
    planned: Option<Duration>,
}

impl LiveLine {
    pub(crate) fn new(planned: Option<Duration>) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            planned,
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
        let line = format!(
            "[{:>4}s{of}{phase}] {:>7.1} req/s · {:>7.0} tok/s · in flight {:>4} · ok {} · failed {}{} · TTFT p50 {} p95 {} ms (last {}s)",
            live.elapsed.as_secs(),
            live.completed_per_s,
            live.output_tokens_per_s,
            live.in_flight,
            live.succeeded,
            live.failed,
            if live.missed > 0 { format!(" · missed {}", live.missed) } else { String::new() },
            ms(live.ttft_p50),
            ms(live.ttft_p95),
            live.window.as_secs(),
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        Control::Continue
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        if self.tty {
            eprintln!();
        }
    }
}
