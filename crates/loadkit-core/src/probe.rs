//! `Probe`: where a client marks the milestones of one request; the engine stamps the times.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

use crate::collector::Msg;
use crate::event::RequestRecord;

/// An instant on the engine's clock, taken by [`Probe::stamp`] or [`Probe::sent_stamp`].
///
/// Opaque on purpose: a client cannot read a time from it, only hand it back to
/// [`Probe::span`], so every latency is still measured by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Duration);

/// The milestones of one in-flight request.
///
/// A [`Client`](crate::Client) calls the `mark_*` methods as the response arrives; the probe
/// stamps each with the engine's monotonic clock. Inter-chunk gaps are kept by histogram bucket
/// ([`SparseHistogram`](loadkit_metrics::SparseHistogram), which grows with the distinct buckets,
/// not the chunks) until the request's outcome decides which metric they belong to; marking a
/// chunk never locks and does not allocate once the stream's buckets are known.
#[derive(Debug)]
pub struct Probe {
    start: Instant,
    record: RequestRecord,
    /// First content of the response being read (`None` before its first content).
    segment_first: Option<Duration>,
    /// Last content of the response being read, for the next gap.
    previous: Option<Duration>,
    /// Where [`mark_end`](Self::mark_end) put the end.
    end_mark: Option<Duration>,
    tx: UnboundedSender<Msg>,
}

impl Probe {
    pub(crate) fn new(start: Instant, record: RequestRecord, tx: UnboundedSender<Msg>) -> Self {
        Self {
            start,
            record,
            segment_first: None,
            previous: None,
            end_mark: None,
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

    /// Marks the end of the response now: its end marker arrived (`data: [DONE]`, Ollama's
    /// `done: true`, a configured end event), or its last byte when the protocol has none.
    ///
    /// The request's end is the last such mark when it succeeds, so reading what follows the
    /// marker (draining a body for connection reuse) is off the clock. A later response of the
    /// same request (the next round of a conversation) starts a new segment: the gap across the
    /// boundary is not an inter-token gap. Without a mark, the end is when the client returns.
    #[inline]
    pub fn mark_end(&mut self) {
        let now = self.now();
        self.end_mark = Some(now);
        self.close_segment(now);
    }

    /// Counts one resend of this request after a reused keep-alive connection turned out to be
    /// closed by the server before any byte of the response arrived. The request's timings stay
    /// measured from its original intended start and send, so the retry is not hidden.
    pub fn stale_connection_retry(&mut self) {
        self.record.stale_retries += 1;
    }

    fn close_segment(&mut self, at: Duration) {
        if let Some(first) = self.segment_first.take() {
            self.record.generation += at.saturating_sub(first);
            self.record.segments += 1;
        }
        self.previous = None;
    }

    /// Marks one chunk of generated content carrying `units` output units (tokens, usually 1)
    /// and `bytes` bytes of content. Role-only, empty, keepalive and usage-only chunks are *not*
    /// content: do not mark them.
    #[inline]
    pub fn content(&mut self, units: u32, bytes: usize) {
        let now = self.now();
        self.record.first_byte.get_or_insert(now);
        self.record.first_content.get_or_insert(now);
        match self.previous {
            None => self.segment_first = Some(now),
            Some(last) => {
                let gap = now.saturating_sub(last);
                let ns = u64::try_from(gap.as_nanos()).unwrap_or(u64::MAX);
                self.record.gaps.record_value(ns);
            }
        }
        self.previous = Some(now);
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
    /// [`Named::CAPACITY`](crate::Named::CAPACITY) distinct names per request are kept.
    pub fn server_timing(&mut self, name: &'static str, value: Duration) {
        self.record.timings.push(name, value);
    }

    /// Adds `n` to the protocol-defined count `name` (e.g. a conversation's tool rounds). Counts
    /// travel with the finished record and are summed over measured requests into
    /// `RunStats::tallies`, so they merge like every statistic; at most
    /// [`Named::CAPACITY`](crate::Named::CAPACITY) distinct names per request.
    pub fn tally(&mut self, name: &'static str, n: u64) {
        self.record.tallies.add(name, n);
    }

    /// Records one of many values of the duration metric `name` for this request (a TTS
    /// session's per-block synthesis times, its underrun waits): unlike
    /// [`span`](Self::span), a name may take any number of values, kept by histogram bucket
    /// (allocating only for a new name or bucket). Aggregated, for successful requests, into
    /// `RunStats::named` beside the spans.
    pub fn sample(&mut self, name: &'static str, value: Duration) {
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.record
            .samples
            .record(name, crate::SampleUnit::Time, ns);
    }

    /// The time from `from` to now as one value of the duration metric `name` (see
    /// [`sample`](Self::sample)), stamped by the engine's clock.
    pub fn sample_since(&mut self, name: &'static str, from: Stamp) {
        let value = self.now().saturating_sub(from.0);
        self.sample(name, value);
    }

    /// Records one value of the ratio metric `name` (a real-time factor); reported with unit
    /// `ratio`, to about three significant digits. Negative and non-finite values are dropped.
    pub fn sample_ratio(&mut self, name: &'static str, value: f64) {
        if value.is_finite() && value >= 0.0 {
            let scaled = (value * crate::event::RATIO_SCALE)
                .round()
                .min(u64::MAX as f64) as u64;
            self.record
                .samples
                .record(name, crate::SampleUnit::Ratio, scaled);
        }
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
        self.record.timings.push(name, value);
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

    /// Ends the request and hands the record over. A success ends at its last
    /// [`mark_end`](Self::mark_end) (or now, when the client marked none); a failure ends now.
    /// Ends the request and sends its record; its error class and the server's `Retry-After`
    /// when it failed.
    pub(crate) fn finish(
        mut self,
        outcome: Result<(), crate::RequestError>,
    ) -> Option<(loadkit_metrics::ErrorKind, Option<Duration>)> {
        let now = self.now();
        let end = match (&outcome, self.end_mark) {
            (Ok(()), Some(mark)) => mark,
            _ => now,
        };
        self.close_segment(end);
        self.record.end = end;
        self.record.error = outcome.err();
        let failure = self.record.error.as_ref().map(|e| (e.kind, e.retry_after));
        // A closed channel means the run is over; the record has nowhere to go.
        let _ = self.tx.send(Msg::Finished(Box::new(self.record)));
        failure
    }

    #[cfg(test)]
    pub(crate) fn detached(
        record: RequestRecord,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self::new(Instant::now(), record, tx), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(mut rx: tokio::sync::mpsc::UnboundedReceiver<Msg>) -> Box<RequestRecord> {
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Finished(r) = msg {
                return r;
            }
        }
        panic!("no finished record");
    }

    /// The summary of `n` recordings of `value`.
    fn same(n: usize, value: Duration) -> loadkit_metrics::Summary {
        let mut h = loadkit_metrics::Histogram::new();
        (0..n).for_each(|_| h.record(value));
        h.summary()
    }

    fn gap_histogram(r: &RequestRecord) -> loadkit_metrics::Histogram {
        let mut h = loadkit_metrics::Histogram::new();
        r.gaps.add_to(&mut h);
        h
    }

    #[tokio::test(start_paused = true)]
    async fn gaps_are_measured_between_content_chunks_only() {
        let (mut probe, rx) = Probe::detached(RequestRecord::default());
        tokio::time::advance(Duration::from_millis(50)).await;
        probe.mark_first_byte();
        probe.content(1, 5);
        for _ in 0..40 {
            tokio::time::advance(Duration::from_millis(10)).await;
            probe.content(1, 3);
        }
        assert_eq!(probe.content_chunks(), 41);
        probe.finish(Ok(()));
        let r = finished(rx);
        let gaps = gap_histogram(&r);
        assert_eq!(gaps.summary(), same(40, Duration::from_millis(10)));
        assert_eq!(r.first_content, Some(Duration::from_millis(50)));
        assert_eq!(r.content_units, 41);
        assert_eq!(r.content_bytes, 5 + 40 * 3);
        assert_eq!((r.segments, r.generation), (1, Duration::from_millis(400)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_ends_at_its_end_marker_not_when_draining_finishes() {
        let (mut probe, rx) = Probe::detached(RequestRecord::default());
        for _ in 0..4 {
            tokio::time::advance(Duration::from_millis(5)).await;
            probe.content(1, 1);
        }
        tokio::time::advance(Duration::from_millis(1)).await;
        probe.mark_end();
        // The body's close comes 800 ms after the end marker.
        tokio::time::advance(Duration::from_millis(800)).await;
        probe.finish(Ok(()));
        let r = finished(rx);
        assert_eq!(r.end, Duration::from_millis(21));
        assert_eq!(r.e2e(), Duration::from_millis(21));
        // (21 − 5) ms over 3 tokens after the first.
        assert_eq!(r.tpot(), Some(Duration::from_nanos(16_000_000 / 3)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_ends_when_it_failed() {
        let (mut probe, rx) = Probe::detached(RequestRecord::default());
        probe.content(1, 1);
        probe.mark_end();
        tokio::time::advance(Duration::from_millis(30)).await;
        probe.finish(Err(crate::RequestError::validation("too few chunks")));
        assert_eq!(finished(rx).end, Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn one_chunk_gives_no_tpot() {
        let (mut probe, rx) = Probe::detached(RequestRecord::default());
        tokio::time::advance(Duration::from_millis(40)).await;
        // A non-streamed answer: one chunk carrying every token.
        probe.content(32, 100);
        probe.usage(Some(10), Some(32));
        probe.finish(Ok(()));
        let r = finished(rx);
        assert_eq!(r.tpot(), None);
        assert_eq!(r.ttft(), Some(Duration::from_millis(40)));
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_are_segments_whose_boundary_is_not_a_gap() {
        let (mut probe, rx) = Probe::detached(RequestRecord::default());
        // Round 1: 3 chunks 5 ms apart, then the end marker.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_millis(5)).await;
            probe.content(1, 1);
        }
        probe.mark_end();
        // Tool round trip and the next prefill: 300 ms without content.
        tokio::time::advance(Duration::from_millis(300)).await;
        for _ in 0..3 {
            tokio::time::advance(Duration::from_millis(5)).await;
            probe.content(1, 1);
        }
        probe.mark_end();
        probe.finish(Ok(()));
        let r = finished(rx);
        let gaps = gap_histogram(&r);
        assert_eq!(gaps.summary(), same(4, Duration::from_millis(5)));
        assert_eq!((r.segments, r.generation), (2, Duration::from_millis(20)));
        // 20 ms of generation over 6 − 2 tokens after each round's first.
        assert_eq!(r.tpot(), Some(Duration::from_millis(5)));
        assert_eq!(r.e2e(), Duration::from_millis(330));
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
        let spans: Vec<_> = record.unwrap().timings.iter().collect();
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
