//! `Probe`: where a client marks the milestones of one request; the engine stamps the times.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::collector::{GapBatch, Msg, GAP_BATCH};
use crate::event::{RequestRecord, ServerTimings};

/// An instant on the engine's clock, taken by [`Probe::stamp`] or [`Probe::sent_stamp`].
///
/// Opaque on purpose: a client cannot read a time from it, only hand it back to
/// [`Probe::span`], so every latency is still measured by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Duration);

/// The milestones of one in-flight request.
///
/// A [`Client`](crate::Client) calls the `mark_*` methods as the response arrives; the probe
/// stamps each with the engine's monotonic clock. Inter-chunk gaps are kept in a small fixed
/// buffer and handed to the collector in batches, so marking a chunk never locks or allocates.
#[derive(Debug)]
pub struct Probe {
    start: Instant,
    record: RequestRecord,
    gaps: GapBatch,
    tx: UnboundedSender<Msg>,
}

impl Probe {
    pub(crate) fn new(start: Instant, record: RequestRecord, tx: UnboundedSender<Msg>) -> Self {
        let gaps = GapBatch {
            len: 0,
            warmup: record.warmup,
            ns: [0; GAP_BATCH],
        };
        Self {
            start,
            record,
            gaps,
            tx,
        }
    }

    /// A probe attached to no run, for one-off requests outside a load test (health checks,
    /// model listings): its marks go nowhere.
    pub fn standalone() -> Self {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        Self::new(Instant::now(), RequestRecord::default(), tx)
    }

    #[inline]
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// Marks the request as sent now, replacing the engine's mark. Call it only when the client
    /// did slow local work (reading a file, encoding audio) before actually sending.
    pub fn mark_sent(&mut self) {
        self.record.sent = self.now();
    }

    /// Marks the arrival of the response headers (first byte). Later calls are ignored.
    #[inline]
    pub fn mark_first_byte(&mut self) {
        if self.record.first_byte.is_none() {
            self.record.first_byte = Some(self.now());
        }
    }

    /// Marks one chunk of generated content carrying `units` output units (tokens, usually 1)
    /// and `bytes` bytes of content. Role-only, empty, keepalive and usage-only chunks are *not*
    /// content: do not mark them.
    #[inline]
    pub fn content(&mut self, units: u32, bytes: usize) {
        let now = self.now();
        self.record.first_byte.get_or_insert(now);
        match self.record.last_content {
            None => self.record.first_content = Some(now),
            Some(last) => self.push_gap(now.saturating_sub(last)),
        }
        self.record.last_content = Some(now);
        self.record.content_chunks += 1;
        self.record.content_units += u64::from(units);
        self.record.content_bytes += bytes as u64;
    }

    /// Marks content that is model reasoning ("thinking"): it counts as content and flags the
    /// request.
    #[inline]
    pub fn reasoning(&mut self, units: u32, bytes: usize) {
        self.record.reasoning = true;
        self.content(units, bytes);
    }

    /// Adds `n` bytes of response body received (framing included).
    #[inline]
    pub fn bytes(&mut self, n: usize) {
        self.record.bytes += n as u64;
    }

    /// Records the token usage the server reported. `None` leaves a value unreported.
    pub fn usage(&mut self, input_tokens: Option<u64>, output_tokens: Option<u64>) {
        if input_tokens.is_some() {
            self.record.input_tokens = input_tokens;
        }
        if output_tokens.is_some() {
            self.record.output_tokens = output_tokens;
        }
    }

    /// Records a timing the *server* reported about this request (e.g. Ollama's
    /// `eval_duration`), aggregated into the histogram named `name`. Up to
    /// [`ServerTimings::CAPACITY`] distinct names per request are kept.
    pub fn server_timing(&mut self, name: &'static str, value: Duration) {
        self.record.server_timings.push(name, value);
    }

    /// The engine's clock now, to start a client-defined span (e.g. one round of a
    /// conversation) that [`span`](Self::span) ends.
    pub fn stamp(&self) -> Stamp {
        Stamp(self.now())
    }

    /// When the request was sent, as a [`Stamp`].
    pub fn sent_stamp(&self) -> Stamp {
        Stamp(self.record.sent)
    }

    /// Records the time from `from` to now, less `minus` (saturating at zero), as the named
    /// metric `name`: a client-defined sub-latency stamped by the engine's clock. `minus` is a
    /// server-reported part of the span to take out (e.g. the server's own total time, leaving
    /// queueing and network overhead); pass [`Duration::ZERO`] otherwise.
    ///
    /// Named metrics share the per-request slots of [`server_timing`](Self::server_timing) and
    /// aggregate into the report's `metrics` the same way.
    pub fn span(&mut self, name: &'static str, from: Stamp, minus: Duration) {
        let value = self.now().saturating_sub(from.0).saturating_sub(minus);
        self.record.server_timings.push(name, value);
    }

    /// Content chunks marked so far (for success rules such as "more than 2 chunks").
    pub fn content_chunks(&self) -> u64 {
        self.record.content_chunks
    }

    /// Output units marked so far.
    pub fn content_units(&self) -> u64 {
        self.record.content_units
    }

    /// The sequence number of this request.
    pub fn seq(&self) -> u64 {
        self.record.seq
    }

    /// `true` when this request belongs to the warm-up, so clients that keep their own counters
    /// (like tool-calling rounds) can leave it out as the engine's statistics do.
    pub fn is_warmup(&self) -> bool {
        self.record.warmup
    }

    #[inline]
    fn push_gap(&mut self, gap: Duration) {
        let ns = u64::try_from(gap.as_nanos()).unwrap_or(u64::MAX);
        self.gaps.ns[usize::from(self.gaps.len)] = ns;
        self.gaps.len += 1;
        if usize::from(self.gaps.len) == GAP_BATCH {
            self.flush_gaps();
        }
    }

    fn flush_gaps(&mut self) {
        if self.gaps.len > 0 {
            // A closed channel means the run is over; the values have nowhere to go.
            let _ = self.tx.send(Msg::Gaps(self.gaps));
            self.gaps.len = 0;
        }
    }

    /// Ends the request: stamps the end, flushes the remaining gaps and hands the record over.
    pub(crate) fn finish(mut self, outcome: Result<(), crate::RequestError>) {
        self.flush_gaps();
        self.record.end = self.now();
        self.record.error = outcome.err();
        let _ = self.tx.send(Msg::Finished(Box::new(self.record)));
    }

    #[cfg(test)]
    pub(crate) fn detached(
        record: RequestRecord,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self::new(Instant::now(), record, tx), rx)
    }
}

impl ServerTimings {
    /// How many distinct server timings one request can carry.
    pub const CAPACITY: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gaps_are_measured_between_content_chunks_only() {
        let (mut probe, mut rx) = Probe::detached(RequestRecord::default());
        tokio::time::advance(Duration::from_millis(50)).await;
        probe.mark_first_byte();
        probe.content(1, 5);
        for _ in 0..40 {
            tokio::time::advance(Duration::from_millis(10)).await;
            probe.content(1, 3);
        }
        assert_eq!(probe.content_chunks(), 41);
        probe.finish(Ok(()));
        let mut gaps = Vec::new();
        let mut record = None;
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Gaps(batch) => gaps.extend_from_slice(&batch.ns[..usize::from(batch.len)]),
                Msg::Finished(r) => record = Some(r),
                _ => {}
            }
        }
        assert_eq!(gaps.len(), 40);
        assert!(gaps.iter().all(|&g| g == 10_000_000));
        let r = record.unwrap();
        assert_eq!(r.first_content, Some(Duration::from_millis(50)));
        assert_eq!(r.content_units, 41);
        assert_eq!(r.content_bytes, 5 + 40 * 3);
    }

    #[tokio::test(start_paused = true)]
    async fn spans_are_stamped_by_the_engine_clock() {
        let (mut probe, mut rx) = Probe::detached(RequestRecord::default());
        tokio::time::advance(Duration::from_millis(30)).await;
        let round = probe.stamp();
        tokio::time::advance(Duration::from_millis(20)).await;
        probe.span("round_2", round, Duration::ZERO);
        probe.span("overhead", probe.sent_stamp(), Duration::from_millis(45));
        probe.span("clamped", round, Duration::from_secs(1));
        probe.finish(Ok(()));
        let mut record = None;
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Finished(r) = msg {
                record = Some(r);
            }
        }
        let spans: Vec<_> = record.unwrap().server_timings.iter().collect();
        assert_eq!(
            spans,
            [
                ("round_2", Duration::from_millis(20)),
                ("overhead", Duration::from_millis(5)),
                ("clamped", Duration::ZERO),
            ]
        );
    }
}
