//! `Event`, `Observer` and `RequestRecord`: what the collector tells its consumers.

use std::time::Duration;

use loadkit_metrics::SparseHistogram;

use crate::{RequestError, StopReason};

/// Everything known about one finished request. Times are offsets from the run start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestRecord {
    /// Sequence number in dispatch order.
    pub seq: u64,
    /// The closed-loop user that sent it.
    pub user: Option<u32>,
    /// `true` when it started during warm-up (excluded from statistics).
    pub warmup: bool,
    /// The intended start.
    pub scheduled: Duration,
    /// When it was sent.
    pub sent: Duration,
    /// When the response headers arrived.
    pub first_byte: Option<Duration>,
    /// When the first content chunk arrived.
    pub first_content: Option<Duration>,
    /// When the last content chunk arrived.
    pub last_content: Option<Duration>,
    /// When it ended: the end marker of its (last) response when the client marked one
    /// ([`Probe::mark_end`](crate::Probe::mark_end)), else when the client returned. Reading the
    /// rest of a body after its end marker (for connection reuse) is not part of it.
    pub end: Duration,
    /// Time spent generating: for each response with content (a tool-calling conversation has
    /// one per round), from its first content chunk to its end, summed. TPOT divides this.
    pub generation: Duration,
    /// Responses that carried content (1 for a plain request, one per round of a conversation).
    pub segments: u32,
    /// The gaps between consecutive content chunks of the same response (ITL), by histogram
    /// bucket. The engine adds them to `itl` when the request succeeds, to `itl_failed` when it
    /// failed, and drops them when it was cancelled.
    pub gaps: SparseHistogram,
    /// Times the request was sent again because a reused keep-alive connection had been closed
    /// by the server before any byte of the response arrived.
    pub stale_retries: u32,
    /// Content chunks received.
    pub content_chunks: u64,
    /// Output units counted from content chunks.
    pub content_units: u64,
    /// Bytes of content.
    pub content_bytes: u64,
    /// Response bytes received (framing included), when the client counts them.
    pub bytes: u64,
    /// Input tokens reported by the server.
    pub input_tokens: Option<u64>,
    /// Output tokens reported by the server.
    pub output_tokens: Option<u64>,
    /// Some content was reasoning.
    pub reasoning: bool,
    /// Named timings: reported by the server (`Probe::server_timing`) or client-defined spans
    /// stamped by the engine (`Probe::span`).
    pub timings: NamedTimings,
    /// Protocol-defined counts (`Probe::tally`).
    pub tallies: Tallies,
    /// Many values per name (`Probe::sample`, `Probe::sample_ratio`): a TTS session's
    /// per-block synthesis times, by histogram bucket.
    pub samples: Samples,
    /// Why it failed, if it did.
    pub error: Option<RequestError>,
}

impl RequestRecord {
    /// Time to first token: first content − sent.
    pub fn ttft(&self) -> Option<Duration> {
        self.first_content.map(|t| t.saturating_sub(self.sent))
    }

    /// Time to first audio, for requests without text (speech): the [`TTFA`] span or sample a
    /// speech protocol records (the smallest, when several).
    pub fn ttfa(&self) -> Option<Duration> {
        self.timings
            .iter()
            .find(|(name, _)| *name == TTFA)
            .map(|(_, d)| d)
            .or_else(|| {
                self.samples
                    .iter()
                    .find(|(name, _, _)| *name == TTFA)
                    .and_then(|(_, _, h)| h.entries().map(|(v, _)| v).min())
                    .map(Duration::from_nanos)
            })
    }

    /// Time to first token from the intended start: first content − scheduled.
    pub fn ttft_corrected(&self) -> Option<Duration> {
        self.first_content.map(|t| t.saturating_sub(self.scheduled))
    }

    /// End to end: end − sent.
    pub fn e2e(&self) -> Duration {
        self.end.saturating_sub(self.sent)
    }

    /// End to end from the intended start: end − scheduled.
    pub fn e2e_corrected(&self) -> Duration {
        self.end.saturating_sub(self.scheduled)
    }

    /// Schedule lag: sent − scheduled.
    pub fn lag(&self) -> Duration {
        self.sent.saturating_sub(self.scheduled)
    }

    /// Output tokens: the server's count when reported, else counted content units.
    pub fn output_tokens_or_counted(&self) -> u64 {
        self.output_tokens.unwrap_or(self.content_units)
    }

    /// Time per output token after the first of each response: `generation / (tokens −
    /// segments)`. For a plain request that is (end − first content) / (tokens − 1).
    ///
    /// `None` unless some response had at least two content chunks (a non-streamed answer is one
    /// chunk carrying every token: it says nothing about pace) and there are more output tokens
    /// than responses.
    pub fn tpot(&self) -> Option<Duration> {
        let tokens = self.output_tokens_or_counted();
        let segments = u64::from(self.segments);
        if self.first_content.is_none()
            || segments == 0
            || self.content_chunks <= segments
            || tokens <= segments
        {
            return None;
        }
        Some(Duration::from_nanos(
            (self.generation.as_nanos() / u128::from(tokens - segments)) as u64,
        ))
    }

    /// `true` when the request was cancelled because the run stopped (neither a success nor a
    /// failure).
    pub fn is_cancelled(&self) -> bool {
        matches!(&self.error, Some(e) if e.kind == loadkit_metrics::ErrorKind::Cancelled)
    }
}

/// Up to [`Named::CAPACITY`] named values of one request, kept inline (no allocation): its
/// timings ([`NamedTimings`]) and its tallies ([`Tallies`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Named<T> {
    len: u8,
    items: [(&'static str, T); 8],
}

/// A request's named timings: server-reported (`Probe::server_timing`) and client-defined spans
/// (`Probe::span`).
pub type NamedTimings = Named<Duration>;

/// A request's protocol-defined counts (`Probe::tally`).
pub type Tallies = Named<u64>;

impl<T: Copy> Named<T> {
    /// How many distinct names one request can carry; further names are dropped.
    pub const CAPACITY: usize = 8;

    fn slot(&mut self, name: &'static str) -> Option<&mut T> {
        let len = usize::from(self.len);
        if let Some(i) = self.items[..len].iter().position(|(n, _)| *n == name) {
            return Some(&mut self.items[i].1);
        }
        if len < self.items.len() {
            self.items[len].0 = name;
            self.len += 1;
            return Some(&mut self.items[len].1);
        }
        None
    }

    /// Sets `name` to `value` (replacing an earlier value).
    pub(crate) fn push(&mut self, name: &'static str, value: T) {
        if let Some(slot) = self.slot(name) {
            *slot = value;
        }
    }

    /// The recorded (name, value) pairs, in the order first recorded.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, T)> + '_ {
        self.items[..usize::from(self.len)].iter().copied()
    }
}

impl Tallies {
    /// Adds `n` to `name`.
    pub(crate) fn add(&mut self, name: &'static str, n: u64) {
        if let Some(slot) = self.slot(name) {
            *slot += n;
        }
    }
}

/// What a named sample measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleUnit {
    /// A duration, kept in nanoseconds (reported in ms).
    Time,
    /// A dimensionless ratio (a real-time factor), kept in millionths.
    Ratio,
}

/// Millionths per unit of a [`SampleUnit::Ratio`] sample.
pub const RATIO_SCALE: f64 = 1e6;

/// Many values per name for one request, each name's values by histogram bucket
/// ([`SparseHistogram`]): memory grows with the distinct buckets, not the values. Empty, and
/// unallocated, until a client records a sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    items: Vec<(&'static str, SampleUnit, SparseHistogram)>,
}

impl Samples {
    pub(crate) fn record(&mut self, name: &'static str, unit: SampleUnit, value: u64) {
        if let Some((_, _, h)) = self.items.iter_mut().find(|(n, _, _)| *n == name) {
            h.record_value(value);
            return;
        }
        let mut h = SparseHistogram::default();
        h.record_value(value);
        self.items.push((name, unit, h));
    }

    /// The recorded names, their units and values.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, SampleUnit, &SparseHistogram)> {
        self.items.iter().map(|(n, u, h)| (*n, *u, h))
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Which part of the run the engine is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Requests start but are excluded from statistics.
    Warmup,
    /// Requests are measured.
    Measuring,
    /// No new requests start; in-flight ones finish.
    Draining,
}

/// A once-per-tick view of the run for live displays. Counts include warm-up requests;
/// percentiles cover the last `window` of finished requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStats {
    /// Time since the run started.
    pub elapsed: Duration,
    /// The phase at this tick.
    pub phase: Option<Phase>,
    /// Requests started so far.
    pub started: u64,
    /// Requests that succeeded so far.
    pub succeeded: u64,
    /// Requests that failed so far.
    pub failed: u64,
    /// Arrivals that never started so far (any [`MissReason`]).
    pub missed: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Requests completed per second over the last tick.
    pub completed_per_s: f64,
    /// Output tokens per second over the last tick.
    pub output_tokens_per_s: f64,
    /// Span of the sliding window behind the percentiles below.
    pub window: Duration,
    /// TTFT median over the window.
    pub ttft_p50: Option<Duration>,
    /// TTFT 95th percentile over the window.
    pub ttft_p95: Option<Duration>,
    /// End-to-end median over the window.
    pub e2e_p50: Option<Duration>,
    /// Time to first audio (speech) median over the window.
    pub ttfa_p50: Option<Duration>,
    /// Time to first audio 95th percentile over the window.
    pub ttfa_p95: Option<Duration>,
}

/// The name under which speech protocols record time to first audio (a span or a sample), so
/// the live view can show it where there is no TTFT.
pub const TTFA: &str = "ttfa";

/// What the collector tells observers, in order, from one task.
///
/// Per-chunk timings are not events (they aggregate straight into histograms); everything a
/// consumer needs per request is in [`Event::RequestFinished`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A request was sent.
    RequestStarted {
        /// Sequence number.
        seq: u64,
        /// Intended start (offset from the run start).
        scheduled: Duration,
        /// Actual send (offset from the run start).
        sent: Duration,
        /// It belongs to the warm-up.
        warmup: bool,
    },
    /// A request ended.
    RequestFinished(&'a RequestRecord),
    /// Arrivals the schedule produced never started.
    ArrivalMissed {
        /// Intended start of the first of them (offset from the run start); all of them were
        /// intended in the same second.
        scheduled: Duration,
        /// How many (at least 1).
        count: u64,
        /// Why they did not start.
        reason: MissReason,
    },
    /// A periodic snapshot for live views.
    Tick(&'a LiveStats),
}

/// Why an arrival the schedule produced never started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// Open loop, drop at saturation: the in-flight cap was reached at its intended start.
    DroppedAtCap,
    /// Open loop, queue at saturation: it was still waiting for a slot when the run stopped.
    QueuedAtStop,
    /// Fixed-interval: an earlier iteration of the same user overran its slot.
    SkippedSlot,
}

impl MissReason {
    /// The report's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MissReason::DroppedAtCap => "dropped_at_cap",
            MissReason::QueuedAtStop => "queued_at_stop",
            MissReason::SkippedSlot => "skipped_slot",
        }
    }
}

/// Whether the run should go on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep going.
    Continue,
    /// Stop starting requests and finish the run with this reason.
    Stop(StopReason),
}

/// A push-model consumer of [`Event`]s: live displays, raw-record writers, stop conditions.
///
/// Every observer runs on the single collector task, so it needs no lock; it should be quick,
/// because a slow observer delays aggregation (never the requests themselves).
pub trait Observer: Send + 'static {
    /// Called for every event; return [`Control::Stop`] to end the run.
    fn on_event(&mut self, event: &Event<'_>) -> Control;
}
