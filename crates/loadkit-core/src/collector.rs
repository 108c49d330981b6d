//! The collector task: the single owner of statistics and observers. Everything arrives as a
//! message; nothing is shared, so nothing is locked.

use std::time::{Duration, SystemTime};

use loadkit_schedule::Pattern;

use loadkit_metrics::RotatingWindow;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::event::{Control, Event, LiveStats, MissReason, Observer, Phase, RequestRecord};
use crate::runner::{CheckpointSink, ErrorRate, Extras};
use crate::slo::Goodput;
use crate::stats::{RunResult, RunStats, TimelineEntry};
use crate::StopReason;

/// What tasks tell the collector: one message per request start and end (the record carries
/// its gaps), and one per run of unsent arrivals. Nothing is sent per chunk.
#[derive(Debug)]
pub(crate) enum Msg {
    Started {
        seq: u64,
        scheduled: Duration,
        sent: Duration,
        warmup: bool,
        queued: bool,
    },
    Finished(Box<RequestRecord>),
    /// `count` arrivals intended in the second of `scheduled` (all warm-up or all measured)
    /// that never started.
    Missed {
        scheduled: Duration,
        count: u64,
        warmup: bool,
        reason: MissReason,
    },
    Overrun {
        warmup: bool,
    },
    /// A closed-loop user waits `wait` as the server's `Retry-After` asked.
    Waited {
        warmup: bool,
        wait: Duration,
    },
    Phase(Phase),
}

/// Slots of the live window; each covers one tick.
const WINDOW_SLOTS: usize = 10;

pub(crate) struct Collector {
    pub(crate) stats: RunStats,
    observers: Vec<Box<dyn Observer>>,
    max_failures: Option<u64>,
    stop: CancellationToken,
    pub(crate) stop_reason: Option<StopReason>,
    /// The latest end of a request that was not cancelled (the measured window ends there at
    /// the earliest).
    pub(crate) last_end: Duration,
    start: Instant,
    tick: Duration,
    phase: Phase,
    live: LiveStats,
    ttft_window: RotatingWindow,
    e2e_window: RotatingWindow,
    ttfa_window: RotatingWindow,
    ttft_second: loadkit_metrics::Histogram,
    e2e_second: loadkit_metrics::Histogram,
    last_tick_completed: u64,
    last_tick_tokens: u64,
    total_tokens: u64,
    warmup: Duration,
    goodput: Option<Goodput>,
    max_error_rate: Option<ErrorRate>,
    checkpoint: Option<(Duration, Box<dyn CheckpointSink>)>,
    next_checkpoint: Duration,
    started_at: SystemTime,
    pattern: Option<Pattern>,
}

impl Collector {
    pub(crate) fn new(
        observers: Vec<Box<dyn Observer>>,
        max_failures: Option<u64>,
        stop: CancellationToken,
        tick: Duration,
        warmup: Duration,
        extras: Extras,
    ) -> Self {
        let next_checkpoint = extras
            .checkpoint
            .as_ref()
            .map_or(Duration::MAX, |(every, _)| *every);
        Self {
            stats: RunStats::default(),
            observers,
            max_failures,
            stop,
            stop_reason: None,
            last_end: Duration::ZERO,
            // Set by `run`: the run's start is fixed only after this (slow) setup.
            start: Instant::now(),
            tick,
            phase: if !warmup.is_zero() {
                Phase::Warmup
            } else {
                Phase::Measuring
            },
            live: LiveStats {
                window: tick * WINDOW_SLOTS as u32,
                ..LiveStats::default()
            },
            ttft_window: RotatingWindow::new(WINDOW_SLOTS),
            e2e_window: RotatingWindow::new(WINDOW_SLOTS),
            ttfa_window: RotatingWindow::new(WINDOW_SLOTS),
            ttft_second: Default::default(),
            e2e_second: Default::default(),
            last_tick_completed: 0,
            last_tick_tokens: 0,
            total_tokens: 0,
            warmup,
            goodput: extras.goodput,
            max_error_rate: extras.max_error_rate,
            checkpoint: extras.checkpoint,
            next_checkpoint,
            started_at: SystemTime::now(),
            pattern: None,
        }
    }

    /// Runs until every sender is gone, ticking for live views and the timeline, for a run
    /// that starts at `start` (`started_at` on the wall clock) on `pattern`.
    pub(crate) async fn run(
        mut self,
        mut rx: UnboundedReceiver<Msg>,
        start: Instant,
        started_at: SystemTime,
        pattern: Pattern,
    ) -> Self {
        self.start = start;
        self.started_at = started_at;
        self.pattern = Some(pattern);
        let mut ticker = tokio::time::interval_at(self.start + self.tick, self.tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(256);
        loop {
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    for msg in batch.drain(..) {
                        self.apply(msg);
                    }
                }
                _ = ticker.tick() => self.on_tick(),
            }
        }
        self.close_second(true);
        self
    }

    fn timeline_at(&mut self, at: Duration) -> &mut TimelineEntry {
        let idx = at.as_secs() as usize;
        let timeline = &mut self.stats.timeline;
        if timeline.len() <= idx {
            let from = timeline.len();
            timeline.extend((from..=idx).map(|i| TimelineEntry {
                t_s: i as u64,
                ..Default::default()
            }));
        }
        &mut timeline[idx]
    }

    fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Started {
                seq,
                scheduled,
                sent,
                warmup,
                queued,
            } => {
                self.live.started += 1;
                self.live.in_flight += 1;
                self.timeline_at(scheduled).intended += 1;
                self.timeline_at(sent).started += 1;
                if warmup {
                    self.stats.counters.warmup += 1;
                } else {
                    self.stats.counters.started += 1;
                    if queued {
                        self.stats.counters.queued_late += 1;
                    }
                }
                self.notify(&Event::RequestStarted {
                    seq,
                    scheduled,
                    sent,
                    warmup,
                });
            }
            Msg::Finished(record) => self.finished(&record),
            Msg::Missed {
                scheduled,
                count,
                warmup,
                reason,
            } => {
                self.live.missed += count;
                self.timeline_at(scheduled).intended += count;
                let c = &mut self.stats.counters;
                if warmup {
                    c.warmup_missed += count;
                } else {
                    c.missed += count;
                    *match reason {
                        MissReason::DroppedAtCap => &mut c.missed_dropped_at_cap,
                        MissReason::QueuedAtStop => &mut c.missed_queued_at_stop,
                        MissReason::SkippedSlot => &mut c.missed_skipped_slots,
                    } += count;
                }
                self.notify(&Event::ArrivalMissed {
                    scheduled,
                    count,
                    reason,
                });
            }
            Msg::Overrun { warmup } => {
                if !warmup {
                    self.stats.counters.overruns += 1;
                }
            }
            Msg::Waited { warmup, wait } => {
                if !warmup {
                    let c = &mut self.stats.counters;
                    c.retry_after_waits += 1;
                    c.retry_after_wait_ms += wait.as_millis() as u64;
                }
            }
            Msg::Phase(phase) => self.phase = phase,
        }
    }

    fn finished(&mut self, r: &RequestRecord) {
        self.live.in_flight = self.live.in_flight.saturating_sub(1);
        let cancelled = r.is_cancelled();
        if r.seq == 0 && !cancelled {
            self.stats.first_request = Some(crate::FirstRequest {
                e2e: r.e2e(),
                ttft: r.ttft(),
                succeeded: r.error.is_none(),
                warmup: r.warmup,
            });
        }
        if !cancelled {
            self.last_end = self.last_end.max(r.end);
        }
        let tokens = r.output_tokens_or_counted();
        let entry = self.timeline_at(r.end);
        match &r.error {
            None => {
                entry.completed += 1;
                entry.output_tokens += tokens;
            }
            Some(_) if cancelled => {}
            Some(e) => {
                entry.failed += 1;
                entry.add_failure(e.kind.class(), 1);
            }
        }
        match &r.error {
            None => {
                self.live.succeeded += 1;
                self.total_tokens += tokens;
                if let Some(t) = r.ttft() {
                    self.ttft_window.record(t);
                    self.ttft_second.record(t);
                } else if let Some(t) = r.ttfa() {
                    self.ttfa_window.record(t);
                }
                self.e2e_window.record(r.e2e());
                self.e2e_second.record(r.e2e());
            }
            Some(_) if cancelled => {}
            Some(_) => self.live.failed += 1,
        }
        if r.warmup {
            self.stats.record_warmup(r);
        } else {
            self.stats.record(r);
            if self.goodput.as_ref().is_some_and(|g| g.is_good(r)) {
                self.stats.counters.goodput += 1;
            }
        }
        self.notify(&Event::RequestFinished(r));
        if let Some(max) = self.max_failures {
            if max > 0 && self.stats.counters.failed >= max {
                self.request_stop(StopReason::MaxFailures);
            }
        }
    }

    fn on_tick(&mut self) {
        let elapsed = self.start.elapsed();
        self.close_second(false);
        let completed = self.live.succeeded + self.live.failed;
        let secs = self.tick.as_secs_f64();
        self.live.elapsed = elapsed;
        self.live.phase = Some(self.phase);
        self.live.completed_per_s = (completed - self.last_tick_completed) as f64 / secs;
        self.live.output_tokens_per_s = (self.total_tokens - self.last_tick_tokens) as f64 / secs;
        self.last_tick_completed = completed;
        self.last_tick_tokens = self.total_tokens;
        let ttft = self.ttft_window.merged();
        (self.live.ttft_p50, self.live.ttft_p95) = if ttft.is_empty() {
            (None, None)
        } else {
            (Some(ttft.quantile(0.5)), Some(ttft.quantile(0.95)))
        };
        let e2e = self.e2e_window.merged();
        self.live.e2e_p50 = (!e2e.is_empty()).then(|| e2e.quantile(0.5));
        let ttfa = self.ttfa_window.merged();
        (self.live.ttfa_p50, self.live.ttfa_p95) = if ttfa.is_empty() {
            (None, None)
        } else {
            (Some(ttfa.quantile(0.5)), Some(ttfa.quantile(0.95)))
        };
        self.ttft_window.rotate();
        self.e2e_window.rotate();
        self.ttfa_window.rotate();
        let live = self.live.clone();
        self.notify(&Event::Tick(&live));
        self.check_error_rate(elapsed);
        if elapsed >= self.next_checkpoint {
            self.take_checkpoint(elapsed);
        }
    }

    /// Stops the run when the failures among the requests that ended in the last window of
    /// whole seconds (the timeline's, measured ones only) reach the limit.
    fn check_error_rate(&mut self, elapsed: Duration) {
        let Some(limit) = self.max_error_rate else {
            return;
        };
        if self.phase != Phase::Measuring || self.stop_reason.is_some() {
            return;
        }
        // The tick comes just after a second ends: the window is the last `window` whole
        // seconds (and the moment of the current one), none of them in the warm-up.
        let now = elapsed.as_secs() as usize;
        let from = now
            .saturating_sub(limit.window.as_secs() as usize)
            .max(self.warmup.as_secs_f64().ceil() as usize);
        let timeline = &self.stats.timeline;
        let window = timeline.get(from..=now.min(timeline.len().saturating_sub(1)));
        let (ok, failed) = window
            .unwrap_or_default()
            .iter()
            .fold((0, 0), |(ok, failed), e| {
                (ok + e.completed, failed + e.failed)
            });
        let ended = ok + failed;
        if ended >= ErrorRate::MIN_REQUESTS && failed as f64 >= limit.rate * ended as f64 {
            self.request_stop(StopReason::MaxErrorRate);
        }
    }

    /// The run so far as a result: stop reason `running`, marked a checkpoint.
    fn snapshot(&self, elapsed: Duration) -> RunResult {
        RunResult {
            stats: self.stats.clone(),
            stop_reason: StopReason::Running,
            pattern: self.pattern.clone().unwrap_or(Pattern {
                kind: "unknown",
                open_loop: true,
                params: Vec::new(),
            }),
            started_at: self.started_at,
            warmup: self.warmup,
            elapsed,
            measured: elapsed.saturating_sub(self.warmup),
            checkpoint: true,
        }
    }

    fn take_checkpoint(&mut self, elapsed: Duration) {
        let snapshot = self.snapshot(elapsed);
        if let Some((every, sink)) = &mut self.checkpoint {
            sink.checkpoint(snapshot);
            self.next_checkpoint = elapsed + *every;
        }
    }

    /// Closes the per-second percentiles of the second that just ended.
    fn close_second(&mut self, last: bool) {
        let elapsed = self.start.elapsed();
        // The tick fires just after the boundary: the closing second is the one before it.
        let closing = if last {
            elapsed.saturating_sub(Duration::from_nanos(1))
        } else {
            elapsed.saturating_sub(self.tick / 2)
        };
        let in_flight = self.live.in_flight;
        let ttft = (!self.ttft_second.is_empty()).then(|| self.ttft_second.quantile(0.5));
        let e2e = (!self.e2e_second.is_empty()).then(|| self.e2e_second.quantile(0.95));
        let entry = self.timeline_at(closing);
        entry.in_flight = in_flight;
        entry.ttft_p50 = ttft;
        entry.e2e_p95 = e2e;
        self.ttft_second.clear();
        self.e2e_second.clear();
    }

    fn notify(&mut self, event: &Event<'_>) {
        let mut stop = None;
        for observer in &mut self.observers {
            if let Control::Stop(reason) = observer.on_event(event) {
                stop.get_or_insert(reason);
            }
        }
        if let Some(reason) = stop {
            self.request_stop(reason);
        }
    }

    fn request_stop(&mut self, reason: StopReason) {
        if self.stop_reason.is_none() {
            self.stop_reason = Some(reason);
            self.stop.cancel();
        }
    }
}
