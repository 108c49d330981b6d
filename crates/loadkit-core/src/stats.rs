//! `RunStats` and `RunResult`: the aggregated outcome of a run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use loadkit_metrics::{Counters, ErrorTable, Histogram};
use loadkit_schedule::Pattern;

use crate::event::RequestRecord;
use crate::StopReason;

/// One second of the run (all traffic, warm-up included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelineEntry {
    /// Seconds since the run start: this entry covers `[t_s, t_s + 1)`.
    pub t_s: u64,
    /// Arrivals the schedule intended to start in this second.
    pub intended: u64,
    /// Requests actually sent in this second.
    pub started: u64,
    /// Requests that ended successfully in this second.
    pub completed: u64,
    /// Requests that failed in this second.
    pub failed: u64,
    /// `failed` by error class (`http_status`, `timeout`, ...), in the order first seen; empty
    /// when none failed. A handful of classes at most, so a list, not a map.
    pub failed_by_class: Vec<(&'static str, u64)>,
    /// Requests in flight at the end of this second.
    pub in_flight: u64,
    /// Output tokens of the requests that ended in this second.
    pub output_tokens: u64,
    /// Median TTFT of the requests that ended in this second.
    pub ttft_p50: Option<Duration>,
    /// 95th percentile end-to-end latency of the requests that ended in this second.
    pub e2e_p95: Option<Duration>,
}

impl TimelineEntry {
    /// Counts `n` failures of `class` in this second (not `failed` itself).
    pub(crate) fn add_failure(&mut self, class: &'static str, n: u64) {
        match self.failed_by_class.iter_mut().find(|(c, _)| *c == class) {
            Some((_, count)) => *count += n,
            None => self.failed_by_class.push((class, n)),
        }
    }
}

/// Every statistic of the measured window (warm-up excluded), mergeable across shards.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Request, token and byte counts.
    pub counters: Counters,
    /// Time to first content chunk, from send.
    pub ttft: Histogram,
    /// Time to first content chunk, from the intended start.
    pub ttft_corrected: Histogram,
    /// Gaps between consecutive content chunks of one response, over all successful requests.
    pub itl: Histogram,
    /// The same gaps of requests that failed (cancelled ones are in neither).
    pub itl_failed: Histogram,
    /// Time per output token after the first, per request.
    pub tpot: Histogram,
    /// End to end, from send.
    pub e2e: Histogram,
    /// End to end, from the intended start.
    pub e2e_corrected: Histogram,
    /// Sent − scheduled.
    pub schedule_lag: Histogram,
    /// Named timings: reported by the server (`Probe::server_timing`, e.g. `server_eval`) or
    /// client-defined spans stamped by the engine (`Probe::span`, e.g. `tool_round_1`).
    pub named: BTreeMap<&'static str, Histogram>,
    /// The names in `named` whose values are ratios (`Probe::sample_ratio`, kept in
    /// millionths, [`RATIO_SCALE`](crate::RATIO_SCALE)), not nanoseconds.
    pub ratios: BTreeSet<&'static str>,
    /// Protocol-defined counts (`Probe::tally`, e.g. `tool_conversations`), summed over the
    /// measured requests; they merge like every other statistic.
    pub tallies: BTreeMap<&'static str, u64>,
    /// Grouped errors.
    pub errors: ErrorTable,
    /// Requests whose content included reasoning.
    pub reasoning_requests: u64,
    /// One entry per second of the run.
    pub timeline: Vec<TimelineEntry>,
    /// The run's first request (sequence 0), warm-up or not: servers that unload idle models
    /// make the first caller pay the load, so it is reported on its own.
    pub first_request: Option<FirstRequest>,
}

/// How the run's first request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstRequest {
    /// Its end-to-end latency, from send.
    pub e2e: Duration,
    /// Its time to first content, when it had content.
    pub ttft: Option<Duration>,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Whether it was a warm-up request (then it is in no other statistic).
    pub warmup: bool,
}

impl RunStats {
    /// Folds one finished, measured request into the statistics.
    pub fn record(&mut self, r: &RequestRecord) {
        let c = &mut self.counters;
        c.bytes += r.bytes;
        c.content_chunks += r.content_chunks;
        c.stale_connection_retries += u64::from(r.stale_retries);
        self.schedule_lag.record(r.lag());
        // Counted for every outcome: a protocol's counts describe what happened (a failed
        // conversation still had its tool rounds).
        for (name, n) in r.tallies.iter() {
            *self.tallies.entry(name).or_default() += n;
        }
        match &r.error {
            Some(e) if e.kind == loadkit_metrics::ErrorKind::Cancelled => {
                c.cancelled += 1;
                return;
            }
            Some(e) => {
                c.failed += 1;
                self.errors.record(e.kind, &e.message);
                r.gaps.add_to(&mut self.itl_failed);
                return;
            }
            None => c.succeeded += 1,
        }
        r.gaps.add_to(&mut self.itl);
        if let Some(t) = r.ttft() {
            self.ttft.record(t);
            c.succeeded_with_content += 1;
        }
        if let Some(t) = r.ttft_corrected() {
            self.ttft_corrected.record(t);
        }
        if let Some(t) = r.tpot() {
            self.tpot.record(t);
        }
        self.e2e.record(r.e2e());
        self.e2e_corrected.record(r.e2e_corrected());
        if let Some(input) = r.input_tokens {
            c.input_tokens += input;
        }
        match r.output_tokens {
            Some(n) => {
                c.output_tokens += n;
                c.tokens_from_server += 1;
            }
            None => {
                c.output_tokens += r.content_units;
                c.tokens_counted += 1;
            }
        }
        if r.reasoning {
            self.reasoning_requests += 1;
        }
        for (name, value) in r.timings.iter() {
            self.named.entry(name).or_default().record(value);
        }
        for (name, unit, values) in r.samples.iter() {
            values.add_to(self.named.entry(name).or_default());
            if unit == crate::SampleUnit::Ratio {
                self.ratios.insert(name);
            }
        }
    }

    /// Folds one finished warm-up request into the warm-up counters only (the timeline shows
    /// warm-up traffic; no statistic includes it).
    pub fn record_warmup(&mut self, r: &RequestRecord) {
        let c = &mut self.counters;
        match &r.error {
            None => {
                c.warmup_succeeded += 1;
                c.warmup_output_tokens += r.output_tokens_or_counted();
            }
            Some(_) if r.is_cancelled() => c.warmup_cancelled += 1,
            Some(_) => c.warmup_failed += 1,
        }
    }

    /// Adds `other` (another shard of the same run) into `self`. Histograms and counters merge
    /// exactly; timelines add second by second.
    pub fn merge(&mut self, other: &RunStats) {
        self.counters.merge(&other.counters);
        for (mine, theirs) in [
            (&mut self.ttft, &other.ttft),
            (&mut self.ttft_corrected, &other.ttft_corrected),
            (&mut self.itl, &other.itl),
            (&mut self.itl_failed, &other.itl_failed),
            (&mut self.tpot, &other.tpot),
            (&mut self.e2e, &other.e2e),
            (&mut self.e2e_corrected, &other.e2e_corrected),
            (&mut self.schedule_lag, &other.schedule_lag),
        ] {
            mine.merge(theirs);
        }
        for (name, n) in &other.tallies {
            *self.tallies.entry(name).or_default() += n;
        }
        for (name, h) in &other.named {
            self.named.entry(name).or_default().merge(h);
        }
        self.ratios.extend(other.ratios.iter().copied());
        self.errors.merge(&other.errors);
        self.reasoning_requests += other.reasoning_requests;
        // Each shard has a first request; the slower one is what a cold server cost.
        self.first_request = match (self.first_request, other.first_request) {
            (Some(a), Some(b)) => Some(if b.e2e > a.e2e { b } else { a }),
            (a, b) => a.or(b),
        };
        if self.timeline.len() < other.timeline.len() {
            self.timeline
                .resize_with(other.timeline.len(), TimelineEntry::default);
        }
        for (i, (mine, theirs)) in self.timeline.iter_mut().zip(&other.timeline).enumerate() {
            mine.t_s = i as u64;
            mine.intended += theirs.intended;
            mine.started += theirs.started;
            mine.completed += theirs.completed;
            mine.failed += theirs.failed;
            for &(class, n) in &theirs.failed_by_class {
                mine.add_failure(class, n);
            }
            mine.in_flight += theirs.in_flight;
            mine.output_tokens += theirs.output_tokens;
            // Per-second percentiles cannot be merged exactly; keep the worse one.
            mine.ttft_p50 = mine.ttft_p50.max(theirs.ttft_p50);
            mine.e2e_p95 = mine.e2e_p95.max(theirs.e2e_p95);
        }
    }
}

/// The outcome of [`Runner::run`](crate::Runner::run).
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Statistics of the measured window.
    pub stats: RunStats,
    /// Why the run stopped.
    pub stop_reason: StopReason,
    /// The schedule's kind and parameters.
    pub pattern: Pattern,
    /// Wall-clock time at the run start.
    pub started_at: SystemTime,
    /// Configured warm-up.
    pub warmup: Duration,
    /// Time from the run start until every request was finished or cancelled (grace included).
    pub elapsed: Duration,
    /// The measured window every rate divides by: from the end of warm-up to the moment the run
    /// stopped starting requests (its deadline, for a duration) or the last end of a request
    /// that was not cancelled, whichever is later. Waiting out the grace period for a request
    /// that is then cancelled does not stretch it.
    pub measured: Duration,
    /// `true` for a snapshot taken while the run was still going (a checkpoint), not its end.
    pub checkpoint: bool,
}

impl RunResult {
    /// `true` when the run did not end by its own rules: stopped by its cancellation token
    /// (e.g. Ctrl+C), or this is a checkpoint of a run still going.
    pub fn interrupted(&self) -> bool {
        self.stop_reason == StopReason::Signal || self.checkpoint
    }
}
