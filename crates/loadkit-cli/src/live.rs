//! Live progress on stderr, as an engine observer (TTFT, or TTFA for speech): an indicatif progress bar on a terminal
//! (elapsed of the planned time, or requests done of the planned count), one plain line every
//! `--progress-every` on anything else (CI logs stay readable), and the final state once at the
//! end.
//!
//! The observer runs on the engine's collector task, so it never draws itself: it hands a
//! snapshot to a drawing thread through a one-slot channel and drops the snapshot when the
//! previous one is still being drawn. A stalled stderr (a full pipe nobody reads) then costs
//! skipped updates, never a delayed collector or growing memory.

use std::io::IsTerminal as _;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use loadkit_core::{Control, Event, LiveStats, Observer, Phase};

use crate::stderr::StderrLines;

/// What the run is expected to last: seconds of planned time, or a number of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planned {
    /// `--duration` (plus warm-up).
    Time(Duration),
    /// `--requests N`, or users × `--iterations`.
    Requests(u64),
    /// Neither is known.
    Open,
}

/// Live progress: rate, in flight, ok/failed, tokens/s and the last 10 s TTFT p50/p95 (E2E p50
/// for requests without text, such as speech).
pub(crate) struct LiveLine {
    planned: Planned,
    out: Output,
    /// Plain lines: one every this many ticks.
    every: u64,
    ticks: u64,
    /// The latest line not yet written (plain mode), written at the end.
    pending: Option<String>,
}

enum Output {
    Bar(BarThread),
    Lines(StderrLines),
}

impl LiveLine {
    /// A bar on a terminal, else plain lines every `every` (at least one tick).
    pub(crate) fn new(planned: Planned, every: Duration) -> Self {
        let out = if std::io::stderr().is_terminal() {
            Output::Bar(BarThread::start(planned))
        } else {
            Output::Lines(StderrLines::new("loadkit-live", 1, false))
        };
        Self {
            planned,
            out,
            every: every.as_secs().max(1),
            ticks: 0,
            pending: None,
        }
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.1}", d.as_secs_f64() * 1e3),
    )
}

/// The figures after the position: rate, tokens, in flight, outcomes, latency.
fn figures(live: &LiveStats) -> String {
    let missed = if live.missed > 0 {
        format!(" · missed {}", live.missed)
    } else {
        String::new()
    };
    // Requests without text (speech sessions, uploads) have no tokens and no TTFT: their
    // duration is what moves.
    let textless = live.ttft_p50.is_none() && live.output_tokens_per_s == 0.0;
    if textless && live.ttfa_p50.is_some() {
        format!(
            "{:>7.1} req/s · in flight {:>4} · ok {} · failed {}{missed} · TTFA p50 {} p95 {} ms (last {}s)",
            live.completed_per_s,
            live.in_flight,
            live.succeeded,
            live.failed,
            ms(live.ttfa_p50),
            ms(live.ttfa_p95),
            live.window.as_secs(),
        )
    } else if textless && live.e2e_p50.is_some() {
        format!(
            "{:>7.1} req/s · in flight {:>4} · ok {} · failed {}{missed} · E2E p50 {} ms (last {}s)",
            live.completed_per_s,
            live.in_flight,
            live.succeeded,
            live.failed,
            ms(live.e2e_p50),
            live.window.as_secs(),
        )
    } else {
        format!(
            "{:>7.1} req/s · {:>7.0} tok/s · in flight {:>4} · ok {} · failed {}{missed} · TTFT p50 {} p95 {} ms (last {}s)",
            live.completed_per_s,
            live.output_tokens_per_s,
            live.in_flight,
            live.succeeded,
            live.failed,
            ms(live.ttft_p50),
            ms(live.ttft_p95),
            live.window.as_secs(),
        )
    }
}

fn phase(live: &LiveStats) -> &'static str {
    match live.phase {
        Some(Phase::Warmup) => " warm-up",
        Some(Phase::Draining) => " draining",
        _ => "",
    }
}

/// The plain line: `[  12s/60s] ...` or `[  12s · 340/1000] ...`.
pub(crate) fn plain_line(live: &LiveStats, planned: Planned) -> String {
    let of = match planned {
        Planned::Time(p) => format!("/{}s", p.as_secs()),
        Planned::Requests(n) => format!(" · {}/{n}", live.succeeded + live.failed),
        Planned::Open => String::new(),
    };
    format!(
        "[{:>4}s{of}{}] {}",
        live.elapsed.as_secs(),
        phase(live),
        figures(live)
    )
}

impl Observer for LiveLine {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        let Event::Tick(live) = event else {
            return Control::Continue;
        };
        match &mut self.out {
            Output::Bar(bar) => bar.send(Snapshot {
                elapsed: live.elapsed,
                done: live.succeeded + live.failed,
                message: format!("{}{}", phase(live).trim_start(), figures(live)),
            }),
            Output::Lines(lines) => {
                self.ticks += 1;
                let line = plain_line(live, self.planned);
                if (self.ticks - 1) % self.every == 0 {
                    // Not taken: the writer is still busy with an earlier line; skipped.
                    let _ = lines.send(line);
                    self.pending = None;
                } else {
                    self.pending = Some(line);
                }
            }
        }
        Control::Continue
    }
}

impl Drop for LiveLine {
    fn drop(&mut self) {
        match &mut self.out {
            Output::Bar(bar) => bar.finish(),
            Output::Lines(lines) => {
                // The final state, when the last line written was older.
                if let Some(line) = self.pending.take() {
                    let _ = lines.send(line);
                }
                lines.finish();
            }
        }
    }
}

/// What one draw of the bar shows.
struct Snapshot {
    elapsed: Duration,
    done: u64,
    message: String,
}

/// The thread that owns the progress bar and draws each snapshot it is handed.
struct BarThread {
    tx: Option<SyncSender<Snapshot>>,
    thread: Option<JoinHandle<()>>,
}

impl BarThread {
    fn start(planned: Planned) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Snapshot>(1);
        let thread = std::thread::Builder::new()
            .name("loadkit-progress".to_owned())
            .spawn(move || {
                let (bar, template) = match planned {
                    Planned::Time(p) => (
                        ProgressBar::new(p.as_secs().max(1)),
                        "{prefix:>5}s/{len}s [{bar:24.cyan/blue}] {msg}",
                    ),
                    Planned::Requests(n) => (
                        ProgressBar::new(n.max(1)),
                        "{pos:>6}/{len} [{bar:24.cyan/blue}] {msg}",
                    ),
                    Planned::Open => (ProgressBar::new_spinner(), "{prefix:>5}s {spinner} {msg}"),
                };
                bar.set_draw_target(ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                for s in rx {
                    let secs = s.elapsed.as_secs();
                    bar.set_prefix(secs.to_string());
                    match planned {
                        Planned::Time(_) => bar.set_position(secs),
                        Planned::Requests(_) => bar.set_position(s.done),
                        Planned::Open => bar.tick(),
                    }
                    bar.set_message(s.message);
                }
                // Leave the last state on the screen above the summary.
                bar.abandon();
            })
            .ok();
        Self {
            tx: thread.is_some().then_some(tx),
            thread,
        }
    }

    fn send(&mut self, snapshot: Snapshot) {
        if let Some(tx) = &self.tx {
            match tx.try_send(snapshot) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => self.tx = None,
            }
        }
    }

    fn finish(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            crate::stderr::join_within(thread);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> LiveStats {
        LiveStats {
            elapsed: Duration::from_secs(12),
            succeeded: 300,
            failed: 40,
            in_flight: 7,
            completed_per_s: 25.0,
            output_tokens_per_s: 1200.0,
            window: Duration::from_secs(10),
            ttft_p50: Some(Duration::from_millis(52)),
            ttft_p95: Some(Duration::from_millis(80)),
            ..LiveStats::default()
        }
    }

    #[test]
    fn plain_lines_show_the_position_against_the_plan() {
        let l = live();
        assert!(plain_line(&l, Planned::Time(Duration::from_secs(60))).starts_with("[  12s/60s] "));
        let by_count = plain_line(&l, Planned::Requests(1000));
        assert!(by_count.starts_with("[  12s · 340/1000] "), "{by_count}");
        let open = plain_line(&l, Planned::Open);
        assert!(open.contains("ok 300 · failed 40"), "{open}");
        assert!(
            open.contains("TTFT p50 52.0 p95 80.0 ms (last 10s)"),
            "{open}"
        );
        assert!(open.contains("1200 tok/s"));
    }

    #[test]
    fn requests_without_text_show_their_duration() {
        let l = LiveStats {
            ttft_p50: None,
            ttft_p95: None,
            output_tokens_per_s: 0.0,
            e2e_p50: Some(Duration::from_millis(900)),
            ..live()
        };
        let line = plain_line(&l, Planned::Open);
        assert!(
            line.contains("E2E p50 900.0 ms") && !line.contains("tok/s"),
            "{line}"
        );
        // Speech with a time to first audio shows that instead.
        let speech = LiveStats {
            ttfa_p50: Some(Duration::from_millis(120)),
            ttfa_p95: Some(Duration::from_millis(300)),
            ..l
        };
        let line = plain_line(&speech, Planned::Open);
        assert!(line.contains("TTFA p50 120.0 p95 300.0 ms"), "{line}");
    }
}
