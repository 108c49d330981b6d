//! `Runner`: drives a [`Client`] on a schedule, open or closed loop, and collects the result.

use std::any::Any;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt as _;
use loadkit_metrics::{ErrorKind, TimeoutPhase};
use loadkit_schedule::{ArrivalSchedule, Pacing, Pattern, UserSchedule};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collector::{Collector, Msg};
use crate::event::{MissReason, Observer, Phase, RequestRecord};
use crate::slo::Goodput;
use crate::stats::RunResult;
use crate::timing::{coarse_wait, sleep_until, spin_until};
use crate::{Client, Probe, RequestCtx, RequestError, Source};

/// Time between the run's setup and its first scheduled instant.
const START_LEAD: Duration = Duration::from_millis(5);

/// The longest duration, timeout or grace a run accepts (instants past it could overflow the
/// clock).
const MAX_SPAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// What an open-loop arrival does when `max_in_flight` requests are already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Saturation {
    /// Wait for a free slot and start late; the lag is recorded (schedule-corrected latencies
    /// include it) and the request counts as `queued_late`.
    #[default]
    Queue,
    /// Do not start it; count it as `missed`.
    Drop,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The configured duration passed.
    Duration,
    /// The configured number of requests was sent.
    Requests,
    /// The failure threshold was reached.
    MaxFailures,
    /// An SLO threshold was breached.
    Slo,
    /// The share of failures over the error window reached its limit.
    MaxErrorRate,
    /// Not a stop: a checkpoint of a run still going (only in checkpoint results).
    Running,
    /// The cancellation token fired (Ctrl+C / SIGTERM in the CLI).
    Signal,
    /// The schedule had no more arrivals.
    Completed,
}

impl StopReason {
    /// The report's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Requests => "requests",
            StopReason::MaxFailures => "max_failures",
            StopReason::Slo => "slo",
            StopReason::MaxErrorRate => "max_error_rate",
            StopReason::Running => "running",
            StopReason::Signal => "signal",
            StopReason::Completed => "completed",
        }
    }
}

/// The runner's configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunConfigError {
    /// Neither `open_loop` nor `closed_loop` was given.
    #[error("no schedule: call open_loop(...) or closed_loop(...)")]
    NoSchedule,
    /// Neither a duration, a request count nor a finite schedule bounds the run.
    #[error("the run is unbounded: set a duration or a request count")]
    Unbounded,
    /// A parameter is out of range.
    #[error("{0}")]
    Invalid(String),
}

enum Load {
    Open(Box<dyn ArrivalSchedule>),
    Closed(Arc<dyn UserSchedule>),
}

#[derive(Clone, Copy)]
struct Config {
    max_in_flight: u32,
    saturation: Saturation,
    duration: Option<Duration>,
    requests: Option<u64>,
    warmup: Duration,
    timeout: Option<Duration>,
    grace: Duration,
    max_failures: Option<u64>,
    max_error_rate: Option<ErrorRate>,
    iterations: Option<u64>,
    respect_retry_after: bool,
}

/// Stop once this share of the requests that ended in the last `window` failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorRate {
    /// The share, 0 to 1.
    pub rate: f64,
    /// The sliding window, whole seconds (at least 1).
    pub window: Duration,
}

impl ErrorRate {
    /// Fewest requests that must have ended in the window before the rate is judged.
    pub const MIN_REQUESTS: u64 = 20;
}

/// Receives a snapshot of the run every checkpoint interval (on the collector task: hand the
/// work to another thread rather than writing files here).
pub trait CheckpointSink: Send + 'static {
    /// A snapshot of the run so far: stop reason [`StopReason::Running`], `checkpoint` set.
    fn checkpoint(&mut self, snapshot: RunResult);
}

impl<F: FnMut(RunResult) + Send + 'static> CheckpointSink for F {
    fn checkpoint(&mut self, snapshot: RunResult) {
        self(snapshot);
    }
}

/// What the collector needs besides its own state.
pub(crate) struct Extras {
    pub(crate) goodput: Option<Goodput>,
    pub(crate) max_error_rate: Option<ErrorRate>,
    pub(crate) checkpoint: Option<(Duration, Box<dyn CheckpointSink>)>,
}

/// Builds a [`Runner`], validating every setting. See the crate docs for an example.
pub struct RunnerBuilder<C, S> {
    client: C,
    source: S,
    load: Option<Load>,
    config: Config,
    observers: Vec<Box<dyn Observer>>,
    cancel: CancellationToken,
    abort: CancellationToken,
    goodput: Option<Goodput>,
    checkpoint: Option<(Duration, Box<dyn CheckpointSink>)>,
}

impl<C, S> fmt::Debug for RunnerBuilder<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunnerBuilder").finish_non_exhaustive()
    }
}

/// A validated run, ready to [`run`](Runner::run).
pub struct Runner<C, S> {
    client: C,
    source: S,
    load: Load,
    config: Config,
    observers: Vec<Box<dyn Observer>>,
    cancel: CancellationToken,
    abort: CancellationToken,
    goodput: Option<Goodput>,
    checkpoint: Option<(Duration, Box<dyn CheckpointSink>)>,
}

impl<C, S> fmt::Debug for Runner<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl<C, S> Runner<C, S>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    /// Starts building a run of `client`, with requests made by `source`.
    ///
    /// Defaults: at most 1024 requests in flight (queued when saturated), no warm-up, a 60 s
    /// per-request timeout, and a 30 s grace period for in-flight requests once the run stops.
    pub fn builder(client: C, source: S) -> RunnerBuilder<C, S> {
        RunnerBuilder {
            client,
            source,
            load: None,
            config: Config {
                max_in_flight: 1024,
                saturation: Saturation::Queue,
                duration: None,
                requests: None,
                warmup: Duration::ZERO,
                timeout: Some(Duration::from_secs(60)),
                grace: Duration::from_secs(30),
                max_failures: None,
                max_error_rate: None,
                iterations: None,
                respect_retry_after: false,
            },
            observers: Vec::new(),
            cancel: CancellationToken::new(),
            abort: CancellationToken::new(),
            goodput: None,
            checkpoint: None,
        }
    }
}

impl<C, S> RunnerBuilder<C, S>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    /// Open loop: start one request per arrival of `schedule`, whatever the server's speed.
    pub fn open_loop(mut self, schedule: impl ArrivalSchedule + 'static) -> Self {
        self.load = Some(Load::Open(Box::new(schedule)));
        self
    }

    /// Closed loop: users loop request → wait as `schedule` says.
    pub fn closed_loop(mut self, schedule: impl UserSchedule + 'static) -> Self {
        self.load = Some(Load::Closed(Arc::new(schedule)));
        self
    }

    /// Open loop only: the most requests in flight at once (at least 1).
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.config.max_in_flight = n;
        self
    }

    /// Open loop only: what an arrival does when the in-flight cap is reached.
    pub fn on_saturation(mut self, saturation: Saturation) -> Self {
        self.config.saturation = saturation;
        self
    }

    /// Stop starting requests after warm-up + `duration`.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.config.duration = Some(duration);
        self
    }

    /// Stop after sending `n` measured requests (warm-up requests not counted).
    pub fn requests(mut self, n: u64) -> Self {
        self.config.requests = Some(n);
        self
    }

    /// Closed loop only: each user runs at most `n` iterations (warm-up ones included) and
    /// then leaves; the run completes when every user has (or at its duration or request
    /// limit, whichever comes first). `iterations(1)` gives every user exactly one session:
    /// one listener, one document.
    pub fn iterations(mut self, n: u64) -> Self {
        self.config.iterations = Some(n);
        self
    }

    /// Requests intended to start before this offset run but are excluded from statistics.
    pub fn warmup(mut self, warmup: Duration) -> Self {
        self.config.warmup = warmup;
        self
    }

    /// Per-request deadline (`None`: no deadline).
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// How long in-flight requests may finish after the run stops before they are cancelled.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.config.grace = grace;
        self
    }

    /// Stop the run after `n` failed measured requests (0 disables).
    pub fn max_failures(mut self, n: u64) -> Self {
        self.config.max_failures = (n > 0).then_some(n);
        self
    }

    /// Adds an observer; observers are called in the order added.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Adds an observer that is already boxed.
    pub fn observer_boxed(mut self, observer: Box<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Cancelling this token stops the run (stop reason `signal`): no new requests; in-flight
    /// ones get the grace period to finish (or are cancelled at once by the
    /// [`abort_token`](Self::abort_token)); the result is still returned.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Cancelling this token cancels every in-flight request at once (counted `cancelled`,
    /// neither success nor failure) and stops the run if it was still going.
    pub fn abort_token(mut self, token: CancellationToken) -> Self {
        self.abort = token;
        self
    }

    /// Stop once `limit.rate` of the requests that ended in the last `limit.window` failed
    /// (judged once per second, from [`ErrorRate::MIN_REQUESTS`] requests in the window, after
    /// warm-up); stop reason `max_error_rate`.
    pub fn max_error_rate(mut self, limit: ErrorRate) -> Self {
        self.config.max_error_rate = Some(limit);
        self
    }

    /// Closed loop: a user whose request failed with a `Retry-After` (a 429 or 503) waits that
    /// long before its next request; the waits are counted (`retry_after_waits`).
    pub fn respect_retry_after(mut self, yes: bool) -> Self {
        self.config.respect_retry_after = yes;
        self
    }

    /// Count the measured requests that meet every per-request target of `rule`
    /// (`counters.goodput`).
    pub fn goodput(mut self, rule: Goodput) -> Self {
        self.goodput = Some(rule);
        self
    }

    /// Every `every`, hand `sink` a snapshot of the run so far (for crash-safe reports).
    pub fn checkpoint(mut self, every: Duration, sink: impl CheckpointSink) -> Self {
        self.checkpoint = Some((every, Box::new(sink)));
        self
    }

    /// [`checkpoint`](Self::checkpoint) with a sink that is already boxed.
    pub fn checkpoint_boxed(mut self, every: Duration, sink: Box<dyn CheckpointSink>) -> Self {
        self.checkpoint = Some((every, sink));
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<Runner<C, S>, RunConfigError> {
        let load = self.load.ok_or(RunConfigError::NoSchedule)?;
        let c = &self.config;
        let ends = matches!(&load, Load::Closed(s) if s.end().is_some())
            || matches!(&load, Load::Closed(_)) && c.iterations.is_some();
        if c.iterations == Some(0) {
            return Err(RunConfigError::Invalid(
                "the iteration count must be at least 1".into(),
            ));
        }
        if matches!(&load, Load::Open(_)) && c.iterations.is_some() {
            return Err(RunConfigError::Invalid(
                "iterations per user need a closed-loop schedule (users)".into(),
            ));
        }
        if c.duration.is_none() && c.requests.is_none() && !ends {
            return Err(RunConfigError::Unbounded);
        }
        if c.duration == Some(Duration::ZERO) {
            return Err(RunConfigError::Invalid("duration must be positive".into()));
        }
        if c.requests == Some(0) {
            return Err(RunConfigError::Invalid(
                "the request count must be at least 1".into(),
            ));
        }
        if c.max_in_flight == 0 {
            return Err(RunConfigError::Invalid(
                "max in flight must be at least 1".into(),
            ));
        }
        if c.timeout == Some(Duration::ZERO) {
            return Err(RunConfigError::Invalid("timeout must be positive".into()));
        }
        for (name, d) in [
            (
                "warm-up + duration",
                c.warmup.saturating_add(c.duration.unwrap_or_default()),
            ),
            ("timeout", c.timeout.unwrap_or_default()),
            ("grace", c.grace),
        ] {
            if d > MAX_SPAN {
                return Err(RunConfigError::Invalid(format!(
                    "{name} is longer than the longest run loadkit accepts (365 days)"
                )));
            }
        }
        if let Load::Closed(s) = &load {
            if s.max_users() == 0 {
                return Err(RunConfigError::Invalid("the schedule has no users".into()));
            }
        }
        if let Some(limit) = c.max_error_rate {
            if !(limit.rate > 0.0 && limit.rate <= 1.0) {
                return Err(RunConfigError::Invalid(
                    "the error rate limit must be above 0 and at most 100 %".into(),
                ));
            }
            if limit.window < Duration::from_secs(1) || limit.window > MAX_SPAN {
                return Err(RunConfigError::Invalid(
                    "the error window must be at least 1 s".into(),
                ));
            }
        }
        if let Some((every, _)) = &self.checkpoint {
            if every.is_zero() {
                return Err(RunConfigError::Invalid(
                    "the checkpoint interval must be positive".into(),
                ));
            }
        }
        Ok(Runner {
            client: self.client,
            source: self.source,
            load,
            config: self.config,
            observers: self.observers,
            cancel: self.cancel,
            abort: self.abort,
            goodput: self.goodput,
            checkpoint: self.checkpoint,
        })
    }
}

/// State every request task shares.
struct Shared<C, S> {
    client: C,
    source: S,
    tx: mpsc::UnboundedSender<Msg>,
    start: Instant,
    warmup: Duration,
    timeout: Option<Duration>,
    /// Cancels in-flight requests.
    abort: CancellationToken,
    seq: AtomicU64,
    measured: AtomicU64,
    request_limit: Option<u64>,
    respect_retry_after: bool,
    /// Measured failures so far, counted as each request ends, so no request starts after
    /// the one that reached `max_failures` (the collector, a message later, would be late).
    failures: AtomicU64,
    max_failures: Option<u64>,
}

impl<C, S> Shared<C, S>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    /// Takes a sequence number for a request intended at `scheduled`, or `None` when the request
    /// limit is reached.
    fn claim(&self, scheduled: Duration) -> Option<(u64, bool)> {
        if self.failure_limit_reached() {
            return None;
        }
        let warmup = scheduled < self.warmup;
        if !warmup {
            let n = self.measured.fetch_add(1, Ordering::Relaxed);
            if self.request_limit.is_some_and(|limit| n >= limit) {
                return None;
            }
        }
        Some((self.seq.fetch_add(1, Ordering::Relaxed), warmup))
    }

    /// Measured requests that may still start under the request limit (`u64::MAX`: no limit).
    fn remaining(&self) -> u64 {
        self.request_limit.map_or(u64::MAX, |limit| {
            limit.saturating_sub(self.measured.load(Ordering::Relaxed))
        })
    }

    /// Whether `max_failures` measured requests have failed.
    fn failure_limit_reached(&self) -> bool {
        self.max_failures
            .is_some_and(|max| self.failures.load(Ordering::Relaxed) >= max)
    }

    fn limit_reached(&self) -> bool {
        self.request_limit
            .is_some_and(|limit| self.measured.load(Ordering::Relaxed) >= limit)
    }

    /// Sends one request on `session`, which is reset when the call did not end by itself.
    async fn execute(
        &self,
        session: &mut C::Session,
        ctx: RequestCtx,
        warmup: bool,
        queued: bool,
    ) -> Option<(ErrorKind, Option<Duration>)> {
        let request = self.source.make(&ctx);
        let sent = self.start.elapsed();
        let _ = self.tx.send(Msg::Started {
            seq: ctx.seq,
            scheduled: ctx.scheduled,
            sent,
            warmup,
            queued,
        });
        let record = RequestRecord {
            seq: ctx.seq,
            user: ctx.user,
            warmup,
            scheduled: ctx.scheduled,
            sent,
            ..RequestRecord::default()
        };
        let mut probe = Probe::new(self.start, record, self.tx.clone());
        let outcome = {
            // Boxed once where it is made: the wrappers below then move a pointer, not the
            // client's whole future (kilobytes, copied by each wrapper on every request).
            let call = AssertUnwindSafe(Box::pin(self.client.call(session, request, &mut probe)))
                .catch_unwind();
            tokio::select! {
                biased;
                _ = self.abort.cancelled() => Err(Abandoned::Cancelled),
                result = with_timeout(self.timeout, call) => result,
            }
        };
        let outcome = match outcome {
            Ok(result) => result,
            Err(abandoned) => {
                // The call was dropped or unwound midway: its connection may still carry the
                // abandoned response, so the user's next request starts from a fresh session.
                *session = C::Session::default();
                Err(abandoned.into_error())
            }
        };
        let failure = probe.finish(outcome);
        if !warmup && failure.is_some_and(|(kind, _)| kind != ErrorKind::Cancelled) {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        failure
    }
}

/// A call that did not end by itself.
enum Abandoned {
    Cancelled,
    TimedOut(Duration),
    Panicked(Box<dyn Any + Send>),
}

impl Abandoned {
    fn into_error(self) -> RequestError {
        match self {
            Abandoned::Cancelled => RequestError::cancelled(),
            Abandoned::TimedOut(after) => RequestError::timeout(TimeoutPhase::Total, after),
            Abandoned::Panicked(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                RequestError::protocol(format!("client panicked: {what}"))
            }
        }
    }
}

async fn with_timeout<F>(
    timeout: Option<Duration>,
    call: F,
) -> Result<Result<(), RequestError>, Abandoned>
where
    F: std::future::Future<Output = Result<Result<(), RequestError>, Box<dyn Any + Send>>>,
{
    let result = match timeout {
        None => call.await,
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(r) => r,
            Err(_) => return Err(Abandoned::TimedOut(t)),
        },
    };
    result.map_err(Abandoned::Panicked)
}

impl<C, S> Runner<C, S>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    /// The schedule's kind and parameters.
    pub fn pattern(&self) -> Pattern {
        match &self.load {
            Load::Open(s) => s.pattern(),
            Load::Closed(s) => s.pattern(),
        }
    }

    /// Runs to completion and returns the statistics. Never fails: every problem a request
    /// meets is a classified error inside the result.
    pub async fn run(self) -> RunResult {
        let pattern = self.pattern();
        let Runner {
            client,
            source,
            load,
            config,
            observers,
            cancel,
            abort,
            goodput,
            checkpoint,
        } = self;
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        // Made before the start is fixed: its dozens of histograms take milliseconds to
        // allocate and zero, which would otherwise make the first arrivals late.
        let collector = Collector::new(
            observers,
            config.max_failures,
            stop.clone(),
            Duration::from_secs(1),
            config.warmup,
            Extras {
                goodput,
                max_error_rate: config.max_error_rate,
                checkpoint,
            },
        );
        // The schedule starts a moment after setup, so the first arrivals are not late by the
        // time it takes to spawn the collector and wake the runtime's threads.
        let start = Instant::now() + START_LEAD;
        let started_at = SystemTime::now() + START_LEAD;
        let collector = tokio::spawn(collector.run(rx, start, started_at, pattern.clone()));
        let shared = Arc::new(Shared {
            client,
            source,
            tx,
            start,
            warmup: config.warmup,
            timeout: config.timeout,
            abort: abort.clone(),
            seq: AtomicU64::new(0),
            measured: AtomicU64::new(0),
            request_limit: config.requests,
            respect_retry_after: config.respect_retry_after,
            failures: AtomicU64::new(0),
            max_failures: config.max_failures,
        });
        // The run ends at its duration, or where a finite user schedule (stages) ends.
        let schedule_end = match &load {
            Load::Closed(s) => s.end().map(|end| start + end),
            Load::Open(_) => None,
        };
        let deadline = match (
            config.duration.map(|d| start + config.warmup + d),
            schedule_end,
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ctl = RunControl {
            cancel,
            abort,
            stop,
            deadline,
            grace: config.grace,
            iterations: config.iterations,
        };
        // The dispatcher runs as a task on the runtime's workers, never on the thread that
        // awaits `run` (often `block_on` on the main thread, which would then compete with the
        // workers for the CPU and delay arrivals by whole scheduler time slices).
        let dispatch = {
            let shared = Arc::clone(&shared);
            AbortOnDrop(match load {
                Load::Open(schedule) => {
                    tokio::spawn(async move { run_open(&shared, schedule, &config, &ctl).await })
                }
                Load::Closed(schedule) => {
                    tokio::spawn(async move { run_closed(&shared, schedule, &ctl).await })
                }
            })
        };
        let (reason, stopped_at) = match dispatch.join().await {
            Ok(stopped) => stopped,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => (Some(StopReason::Signal), Instant::now()),
        };
        let end = Instant::now();
        drop(shared);
        let collector = match collector.await {
            Ok(c) => c,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let stop_reason = collector
            .stop_reason
            .or(reason)
            .unwrap_or(StopReason::Completed);
        let elapsed = end.saturating_duration_since(start);
        let window_end = stopped_at
            .saturating_duration_since(start)
            .max(collector.last_end);
        RunResult {
            stats: collector.stats,
            stop_reason,
            pattern,
            started_at,
            warmup: config.warmup,
            elapsed,
            measured: window_end.saturating_sub(config.warmup),
            checkpoint: false,
        }
    }
}

/// Aborts the dispatcher task if `Runner::run` is dropped before it finishes.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Signals a dispatcher watches.
#[derive(Clone)]
struct RunControl {
    cancel: CancellationToken,
    /// Cancels in-flight requests at once (a second Ctrl+C).
    abort: CancellationToken,
    stop: CancellationToken,
    deadline: Option<Instant>,
    grace: Duration,
    /// Closed loop: iterations per user.
    iterations: Option<u64>,
}

impl RunControl {
    /// Resolves when the run must stop starting requests, with the reason (`None`: the
    /// collector decided and knows why).
    async fn stopped(&self) -> Option<StopReason> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Some(StopReason::Signal),
            _ = self.abort.cancelled() => Some(StopReason::Signal),
            _ = self.stop.cancelled() => None,
            _ = until(self.deadline) => Some(StopReason::Duration),
        }
    }
}

impl RunControl {
    /// When the run stopped starting requests: its deadline when that is why, else now.
    fn stop_instant(&self, reason: Option<StopReason>) -> Instant {
        match (reason, self.deadline) {
            (Some(StopReason::Duration), Some(d)) => d,
            _ => Instant::now(),
        }
    }
}

/// Counts arrivals that never started, one message per second of intended starts (a backlog of
/// a million arrivals is a few hundred messages, and the timeline's `intended` stays exact).
struct Unsent<'a> {
    tx: &'a mpsc::UnboundedSender<Msg>,
    warmup: Duration,
    reason: MissReason,
    run: Option<(Duration, u64, bool)>,
}

impl<'a> Unsent<'a> {
    fn new(tx: &'a mpsc::UnboundedSender<Msg>, warmup: Duration, reason: MissReason) -> Self {
        Self {
            tx,
            warmup,
            reason,
            run: None,
        }
    }

    fn add(&mut self, scheduled: Duration) {
        let warmup = scheduled < self.warmup;
        match &mut self.run {
            Some((first, count, w)) if *w == warmup && first.as_secs() == scheduled.as_secs() => {
                *count += 1;
            }
            _ => {
                self.flush();
                self.run = Some((scheduled, 1, warmup));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((scheduled, count, warmup)) = self.run.take() {
            let _ = self.tx.send(Msg::Missed {
                scheduled,
                count,
                warmup,
                reason: self.reason,
            });
        }
    }
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn run_open<C, S>(
    shared: &Arc<Shared<C, S>>,
    mut schedule: Box<dyn ArrivalSchedule>,
    config: &Config,
    ctl: &RunControl,
) -> (Option<StopReason>, Instant)
where
    C: Client,
    S: Source<Item = C::Request>,
{
    let slots = Arc::new(Semaphore::new(config.max_in_flight as usize));
    // Arrivals intended before this instant were held up behind one that waited for a slot.
    let mut backlog_until = shared.start;
    // The arrival taken from the schedule but not started when the run stopped.
    let mut pending = None;
    let reason = loop {
        let Some(offset) = schedule.next_arrival() else {
            break Some(StopReason::Completed);
        };
        let at = shared.start + offset;
        if ctl.deadline.is_some_and(|d| at >= d) {
            // Keep the measured window whole: the run lasts until its deadline.
            break ctl.stopped().await;
        }
        tokio::select! {
            biased;
            reason = ctl.stopped() => {
                pending = Some(offset);
                break reason;
            }
            _ = coarse_wait(at) => {}
        }
        spin_until(at).await;
        let warmup = offset < shared.warmup;
        if !warmup && shared.limit_reached() {
            break Some(StopReason::Requests);
        }
        let (permit, queued) = match slots.clone().try_acquire_owned() {
            Ok(permit) => (permit, at < backlog_until),
            Err(_) if config.saturation == Saturation::Drop => {
                let _ = shared.tx.send(Msg::Missed {
                    scheduled: offset,
                    count: 1,
                    warmup,
                    reason: MissReason::DroppedAtCap,
                });
                continue;
            }
            Err(_) => tokio::select! {
                biased;
                reason = ctl.stopped() => {
                    pending = Some(offset);
                    break reason;
                }
                permit = slots.clone().acquire_owned() => {
                    backlog_until = Instant::now();
                    (permit.expect("the semaphore is never closed"), true)
                }
            },
        };
        let Some((seq, warmup)) = shared.claim(offset) else {
            // Past the failure limit the collector stops the run and knows why.
            break if shared.failure_limit_reached() {
                None
            } else {
                Some(StopReason::Requests)
            };
        };
        let task = Arc::clone(shared);
        tokio::spawn(async move {
            let ctx = RequestCtx {
                seq,
                user: None,
                scheduled: offset,
            };
            // No users in open loop: each request has a session of its own.
            let mut session = C::Session::default();
            task.execute(&mut session, ctx, warmup, queued).await;
            drop(permit);
        });
    };
    let stopped_at = ctl.stop_instant(reason);
    count_unsent(shared, schedule.as_mut(), pending, stopped_at);
    let _ = shared.tx.send(Msg::Phase(Phase::Draining));
    let all = config.max_in_flight;
    drain(reason, ctl, &shared.abort, async {
        let _ = slots.acquire_many(all).await;
    })
    .await;
    (reason, stopped_at)
}

/// Counts every arrival due by `stopped_at` that never started (`pending`, taken from the
/// schedule but not sent, then the rest of the schedule up to the stop) as `queued_at_stop`:
/// under a full in-flight cap these are the arrivals with the worst corrected latency, and
/// leaving them out would hide exactly that tail. Under a request limit only as many as the
/// limit still allowed count.
fn count_unsent<C, S>(
    shared: &Shared<C, S>,
    schedule: &mut dyn ArrivalSchedule,
    pending: Option<Duration>,
    stopped_at: Instant,
) where
    C: Client,
    S: Source<Item = C::Request>,
{
    let due = stopped_at.saturating_duration_since(shared.start);
    let mut allowed = shared.remaining();
    let mut unsent = Unsent::new(&shared.tx, shared.warmup, MissReason::QueuedAtStop);
    let mut next = pending.or_else(|| schedule.next_arrival());
    while let Some(offset) = next {
        if offset >= due {
            break;
        }
        if offset >= shared.warmup {
            if allowed == 0 {
                break;
            }
            allowed -= 1;
        }
        unsent.add(offset);
        next = schedule.next_arrival();
    }
}

/// Lets in-flight work finish within the grace period, cancelling what remains: at once when
/// the abort token fires, or when a signal comes while a run stopped for another reason drains.
async fn drain(
    reason: Option<StopReason>,
    ctl: &RunControl,
    abort: &CancellationToken,
    finished: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(finished);
    let signalled = reason == Some(StopReason::Signal);
    tokio::select! {
        biased;
        _ = &mut finished => return,
        _ = ctl.abort.cancelled() => {}
        _ = ctl.cancel.cancelled(), if !signalled => {}
        _ = tokio::time::sleep(ctl.grace) => {}
    }
    abort.cancel();
    finished.await;
}

async fn run_closed<C, S>(
    shared: &Arc<Shared<C, S>>,
    schedule: Arc<dyn UserSchedule>,
    ctl: &RunControl,
) -> (Option<StopReason>, Instant)
where
    C: Client,
    S: Source<Item = C::Request>,
{
    let (target_tx, target_rx) = watch::channel(schedule.users_at(Duration::ZERO));
    let done = CancellationToken::new();
    let controller = {
        let schedule = Arc::clone(&schedule);
        let done = done.clone();
        let start = shared.start;
        tokio::spawn(async move {
            let mut t = Duration::ZERO;
            while let Some(next) = schedule.next_change(t) {
                tokio::select! {
                    _ = done.cancelled() => return,
                    _ = sleep_until(start + next) => {}
                }
                let _ = target_tx.send(schedule.users_at(next));
                t = next;
            }
        })
    };
    let mut users = JoinSet::new();
    for user in 0..schedule.max_users() {
        let user_loop = UserLoop {
            user,
            shared: Arc::clone(shared),
            schedule: Arc::clone(&schedule),
            target: target_rx.clone(),
            done: done.clone(),
            deadline: ctl.deadline,
            iterations: ctl.iterations.unwrap_or(u64::MAX),
            connect_backoff: Duration::ZERO,
        };
        users.spawn(user_loop.run());
    }
    let reason = tokio::select! {
        biased;
        reason = ctl.stopped() => reason,
        _ = async { while users.join_next().await.is_some() {} } => {
            if shared.limit_reached() {
                Some(StopReason::Requests)
            } else if ctl.deadline.is_some() {
                // Every user is past its last iteration; the run still lasts until its deadline.
                ctl.stopped().await
            } else {
                Some(StopReason::Completed)
            }
        }
    };
    let stopped_at = ctl.stop_instant(reason);
    done.cancel();
    controller.abort();
    let _ = shared.tx.send(Msg::Phase(Phase::Draining));
    drain(reason, ctl, &shared.abort, async {
        while users.join_next().await.is_some() {}
    })
    .await;
    (reason, stopped_at)
}

struct UserLoop<C, S> {
    user: u32,
    shared: Arc<Shared<C, S>>,
    schedule: Arc<dyn UserSchedule>,
    target: watch::Receiver<u32>,
    done: CancellationToken,
    deadline: Option<Instant>,
    /// Iterations left before the user leaves.
    iterations: u64,
    /// The current wait after a failed connection (zero after a request that connected).
    connect_backoff: Duration,
}

/// First wait of a closed-loop user after a connection could not be made.
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest such wait.
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl<C, S> UserLoop<C, S>
where
    C: Client,
    S: Source<Item = C::Request>,
{
    /// An iteration overran: the late one that starts now stands for `first`, the first slot it
    /// overran; every later slot before `ended` (and before the deadline) is skipped, and each
    /// is counted as missed at its intended time.
    fn skip_slots(&self, first: Duration, interval: Duration, ended: Duration) {
        let deadline = self
            .deadline
            .map(|d| d.saturating_duration_since(self.shared.start));
        let mut unsent = Unsent::new(&self.shared.tx, self.shared.warmup, MissReason::SkippedSlot);
        if interval.is_zero() {
            return;
        }
        let mut slot = first + interval;
        while slot < ended && deadline.is_none_or(|d| slot < d) {
            unsent.add(slot);
            slot += interval;
        }
    }

    /// The run ends before the late iteration meant for `slot` starts: that slot is skipped
    /// too when it lay before the deadline.
    fn miss_pending_slot(&self, overrun: bool, slot: Duration) {
        let start = self.shared.start;
        if overrun && self.deadline.is_some_and(|d| start + slot < d) {
            Unsent::new(&self.shared.tx, self.shared.warmup, MissReason::SkippedSlot).add(slot);
        }
    }

    /// After a failure: waits out the server's `Retry-After` (when respected), or backs off
    /// after a connection that could not be made (refused, DNS, TLS handshake, connect
    /// timeout: 10 ms doubling to 1 s, so a user does not spin on a refused port); `false`
    /// when the run ended meanwhile.
    async fn back_off(
        &mut self,
        failure: Option<(ErrorKind, Option<Duration>)>,
        warmup: bool,
    ) -> bool {
        let wait = match failure {
            None => {
                self.connect_backoff = Duration::ZERO;
                return true;
            }
            Some((_, Some(after))) if self.shared.respect_retry_after => {
                let _ = self.shared.tx.send(Msg::Waited {
                    warmup,
                    wait: after,
                });
                after
            }
            Some((
                ErrorKind::Connect | ErrorKind::Tls | ErrorKind::Timeout(TimeoutPhase::Connect),
                _,
            )) => {
                self.connect_backoff =
                    (self.connect_backoff * 2).clamp(CONNECT_BACKOFF_MIN, CONNECT_BACKOFF_MAX);
                self.connect_backoff
            }
            Some(_) => return true,
        };
        let until = Instant::now() + wait;
        let until = self.deadline.map_or(until, |d| until.min(d));
        tokio::select! {
            biased;
            _ = self.done.cancelled() => false,
            _ = tokio::time::sleep_until(until) => true,
        }
    }

    async fn run(mut self) {
        // Made before the first request, filled by the client, dropped with the user.
        let mut session = C::Session::default();
        let start = self.shared.start;
        let pacing = self.schedule.pacing();
        let mut intended = self.schedule.first_start(self.user);
        let mut overrun = false;
        let mut slot = intended;
        loop {
            let mut reactivated = false;
            while self.user >= *self.target.borrow_and_update() {
                reactivated = true;
                tokio::select! {
                    _ = self.done.cancelled() => return,
                    changed = self.target.changed() => if changed.is_err() { return },
                }
            }
            if reactivated {
                intended = intended.max(start.elapsed());
                slot = intended;
            }
            if self.deadline.is_some_and(|d| start + intended >= d) {
                self.miss_pending_slot(overrun, slot);
                return;
            }
            tokio::select! {
                biased;
                _ = self.done.cancelled() => return,
                _ = coarse_wait(start + intended) => {}
            }
            spin_until(start + intended).await;
            let Some((seq, warmup)) = self.shared.claim(intended) else {
                return;
            };
            if overrun {
                // Counted only now that the late iteration really starts.
                let _ = self.shared.tx.send(Msg::Overrun { warmup });
            }
            // An overrun iteration starts at once, but it was meant for its slot: latency from
            // the intended start includes the wait, as coordinated-omission correction requires.
            let ctx = RequestCtx {
                seq,
                user: Some(self.user),
                scheduled: slot.min(intended),
            };
            let failure = self.shared.execute(&mut session, ctx, warmup, false).await;
            self.iterations -= 1;
            if self.iterations == 0 {
                return;
            }
            if !self.back_off(failure, warmup).await {
                return;
            }
            let ended = start.elapsed();
            let next = pacing.next_start(intended, ended);
            overrun = next.overrun;
            slot = match pacing {
                Pacing::Interval(interval) if next.overrun => {
                    self.skip_slots(intended + interval, interval, ended);
                    intended + interval
                }
                _ => next.at,
            };
            intended = next.at;
            if self.done.is_cancelled() {
                self.miss_pending_slot(overrun, slot);
                return;
            }
        }
    }
}
