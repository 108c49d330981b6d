//! The JSON report model (schema_version 1) and its construction from a run result.

use std::collections::BTreeMap;
use std::time::Duration;

use loadkit_core::metrics::Histogram;
use loadkit_core::schedule::ParamValue;
use loadkit_core::RunResult;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::consistency::Consistency;
use crate::ReportError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Runs whose schedule lag p99 exceeds this are marked generator-limited.
const LIMITED_LAG: Duration = Duration::from_millis(10);

/// A client busy at least this share of its cores' time is the bottleneck itself.
const LIMITED_CPU: f64 = 0.9;

/// Runs shorter than this get no CPU verdict (start-up dominates).
const LIMITED_CPU_MIN_S: f64 = 1.0;

/// Fewer requests than this never mark a run generator-limited: their p99 is one outlier.
const LIMITED_MIN_SAMPLES: u64 = 100;

/// The named fields of `run`, which its flattened settings may not repeat.
const RUN_FIELDS: [&str; 11] = [
    "protocol",
    "target",
    "model",
    "pattern",
    "started_at",
    "duration_s",
    "elapsed_s",
    "warmup_s",
    "stop_reason",
    "interrupted",
    "seed",
];

/// Error groups kept in the report; the rest fold into one "other" row per class.
const TOP_ERRORS: usize = 20;

/// A whole run report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The loadkit version that wrote it.
    pub loadkit_version: String,
    /// What was run, against what, and how it ended.
    pub run: RunInfo,
    /// Request counts of the measured window.
    pub totals: Totals,
    /// Rates over the measured window.
    pub throughput: Throughput,
    /// Token totals and where they came from.
    pub tokens: Tokens,
    /// Latency distributions by name (`ttft`, `itl`, ...).
    pub metrics: BTreeMap<String, Metric>,
    /// Grouped errors, most frequent first.
    pub errors: Vec<ErrorRow>,
    /// One entry per second of the run.
    pub timeline: Vec<TimelineRow>,
    /// The load generator's own health.
    pub generator: Generator,
    /// The report's checks of its own arithmetic (see [`Consistency`]).
    #[serde(default)]
    pub consistency: Consistency,
    /// The run's first request on its own (a cold server's model load shows here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_request: Option<FirstRequestRow>,
    /// The SLO targets and goodput, when the run had any (`--slo`, `--goodput`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<crate::slo::Slo>,
    /// The server's own metrics during the run (`--server-metrics`), when they were scraped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<crate::ServerMetrics>,
    /// Protocol-specific sections, beside the standard ones.
    #[serde(flatten)]
    pub sections: Map<String, Value>,
    /// The sections' own lines for the terminal summary, by section name (not in the JSON: a
    /// report read back shows its sections' fields instead).
    #[serde(skip)]
    pub section_summaries: BTreeMap<String, Vec<String>>,
}

/// The `first_request` section: the run's first request (sequence 0), warm-up or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstRequestRow {
    /// End to end, from send, in ms.
    pub first_request_ms: f64,
    /// Time to first content in ms, when it had content.
    pub ttft_ms: Option<f64>,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Whether it was a warm-up request.
    pub warmup: bool,
}

/// The `run` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Protocol name (`openai-chat`, ...).
    pub protocol: String,
    /// The endpoint URL that was load-tested.
    pub target: String,
    /// The model requested, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The load pattern: `kind`, `loop` (`open` or `closed`) and every parameter.
    pub pattern: Map<String, Value>,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// Length of the measured window in seconds (warm-up excluded).
    pub duration_s: f64,
    /// Wall time in seconds: from the run's start until every request finished or was
    /// cancelled (warm-up and grace included).
    #[serde(default)]
    pub elapsed_s: f64,
    /// Warm-up in seconds (requests then are excluded from every statistic).
    pub warmup_s: f64,
    /// `duration`, `requests`, `max_failures`, `slo`, `signal` or `completed`.
    pub stop_reason: String,
    /// `true` when stopped by a signal (Ctrl+C), or a checkpoint of a run still going; the
    /// report is still complete for what ran.
    pub interrupted: bool,
    /// `true` for a checkpoint written during the run (`--checkpoint-every`): the run was
    /// still going (stop reason `running`); the final report replaces it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checkpoint: bool,
    /// The seed that makes prompts and random schedules reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Further settings (max in flight, timeout, prompt, ...).
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

/// The `totals` section (measured window only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests started.
    pub requests: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Arrivals the schedule produced that never started (see `missed_by_reason`).
    pub missed: u64,
    /// `missed`, by why.
    #[serde(default)]
    pub missed_by_reason: MissedByReason,
    /// Successful requests that carried content (TTFT's population).
    #[serde(default)]
    pub succeeded_with_content: u64,
    /// Requests sent again once after a reused keep-alive connection turned out closed by the
    /// server before any response byte (not failures; their latency includes the retry).
    #[serde(default)]
    pub stale_connection_retries: u64,
    /// Requests cancelled because the run stopped.
    #[serde(default)]
    pub cancelled: u64,
    /// Requests still in flight when a checkpoint was taken (0 in a final report).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub in_flight: u64,
    /// Arrivals that waited for a slot at the in-flight cap.
    #[serde(default)]
    pub queued_late: u64,
    /// Fixed-interval iterations that started late.
    #[serde(default)]
    pub overruns: u64,
    /// Requests run during warm-up (not counted anywhere else).
    #[serde(default)]
    pub warmup: u64,
    /// Closed loop with `--respect-retry-after`: times a user waited as a 429 or 503 asked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_after_waits: u64,
    /// The time those waits took in all, in seconds.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub retry_after_wait_s: f64,
    /// What became of the warm-up traffic (the timeline includes it, no statistic does).
    #[serde(default)]
    pub warmup_outcomes: WarmupOutcomes,
}

/// Why arrivals never started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedByReason {
    /// `--on-saturation drop`: the in-flight cap was reached at the arrival's intended start.
    pub dropped_at_cap: u64,
    /// `--on-saturation queue`: still waiting for a slot when the run stopped.
    pub queued_at_stop: u64,
    /// Fixed-interval: an earlier iteration of the same user overran the slot.
    pub skipped_slot: u64,
}

/// Outcomes of the warm-up requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmupOutcomes {
    /// Succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled when the run stopped.
    pub cancelled: u64,
    /// Warm-up arrivals that never started.
    pub missed: u64,
    /// Output tokens of the successful ones.
    pub output_tokens: u64,
}

/// The `throughput` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Completed (successful) requests per second.
    pub requests_per_s: f64,
    /// Output tokens per second.
    pub output_tokens_per_s: f64,
    /// Input tokens per second.
    pub input_tokens_per_s: f64,
}

/// The `tokens` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// Input tokens, as reported by the server (0 when it never reports them).
    pub input_total: u64,
    /// Output tokens.
    pub output_total: u64,
    /// `server` (every request's usage), `counted` (content chunks counted), or `mixed`.
    pub source: String,
}

/// One latency (or other) distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// `ms`, `ratio`, `count` or `tokens_per_s`.
    pub unit: String,
    /// Number of values.
    pub count: u64,
    /// Mean (null when count is 0, like every statistic below).
    pub mean: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// Base64 of the HdrHistogram V2 deflate serialization, in nanoseconds for `ms` metrics.
    pub hdr: String,
}

/// One grouped error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRow {
    /// The error class (`http_status`, `timeout`, `truncated`, ...).
    pub class: String,
    /// The shared message.
    pub message: String,
    /// Occurrences.
    pub count: u64,
}

/// One second of the timeline (all traffic, warm-up included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the run start.
    pub t_s: u64,
    /// Arrivals the schedule intended in this second.
    pub intended: u64,
    /// Requests actually sent in this second.
    pub started: u64,
    /// Requests that succeeded in this second.
    pub completed: u64,
    /// Requests that failed in this second.
    pub failed: u64,
    /// `failed` by error class, when any failed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_by_class: BTreeMap<String, u64>,
    /// Requests in flight at the end of the second.
    pub in_flight: u64,
    /// Output tokens of requests completed in this second.
    pub output_tokens: u64,
    /// Median TTFT (ms) of requests completed in this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50: Option<f64>,
    /// 95th percentile end-to-end (ms) of requests completed in this second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_p95: Option<f64>,
    /// The server's series in this second (the last scrape within it), by key, when
    /// `--server-metrics` scraped any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub server: BTreeMap<String, f64>,
}

/// The `generator` section: was the load generator itself a bottleneck?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    /// Schedule lag (sent − intended) p99 in ms.
    pub lag_p99_ms: f64,
    /// Arrivals that never started (= `totals.missed`).
    pub missed: u64,
    /// `true` when the generator itself may have limited the run: lag p99 exceeded 10 ms over
    /// at least 100 requests for reasons other than the in-flight cap or fixed-interval
    /// overruns, or the client used at least 90 % of its cores over a run of at least 1 s. The
    /// numbers then describe the generator as much as the server.
    pub limited: bool,
    /// Why `limited` is true, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_reason: Option<String>,
    /// Client CPU time (user + system) in seconds, when the platform reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// Client CPU time over the run's wall time and the cores the client could use (1.0: every
    /// core busy the whole run), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_utilization: Option<f64>,
    /// Peak resident memory of the client in MiB, when the platform reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_mib: Option<f64>,
    /// Content chunks received (all measured requests).
    pub content_events: u64,
    /// Response bytes received.
    pub bytes: u64,
}

/// What the report cannot learn from the run result: supplied by the caller.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    /// Protocol name.
    pub protocol: String,
    /// Target URL.
    pub target: String,
    /// Model name.
    pub model: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
    /// Extra `run` fields.
    pub settings: Map<String, Value>,
    /// Client CPU seconds.
    pub cpu_s: Option<f64>,
    /// Client peak RSS in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Cores the client's runtime could use (for `cpu_utilization`).
    pub client_cores: Option<usize>,
}

fn ms(ns: u64) -> f64 {
    (ns as f64 / 1e3).round() / 1e3
}

fn ms_duration(d: Duration) -> f64 {
    ms(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

impl Metric {
    /// A millisecond metric from a nanosecond histogram.
    pub fn from_histogram_ms(h: &Histogram) -> Self {
        let s = h.summary();
        let some = |v: f64| (s.count > 0).then_some(v);
        Metric {
            unit: "ms".to_owned(),
            count: s.count,
            mean: some(round3(s.mean / 1e6)),
            min: some(ms(s.min)),
            p50: some(ms(s.p50)),
            p90: some(ms(s.p90)),
            p95: some(ms(s.p95)),
            p99: some(ms(s.p99)),
            max: some(ms(s.max)),
            hdr: h.to_base64(),
        }
    }
}

impl Metric {
    /// A `ratio` metric from a histogram of millionths (`Probe::sample_ratio`).
    pub fn from_histogram_ratio(h: &Histogram) -> Self {
        let s = h.summary();
        let scale = loadkit_core::RATIO_SCALE;
        let some = |v: f64| (s.count > 0).then_some(round3(v / scale));
        Metric {
            unit: "ratio".to_owned(),
            count: s.count,
            mean: some(s.mean),
            min: some(s.min as f64),
            p50: some(s.p50 as f64),
            p90: some(s.p90 as f64),
            p95: some(s.p95 as f64),
            p99: some(s.p99 as f64),
            max: some(s.max as f64),
            hdr: h.to_base64(),
        }
    }
}

fn param_json(value: &ParamValue) -> Value {
    match value {
        ParamValue::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
        ParamValue::Int(n) => Value::from(*n),
        ParamValue::Duration(d) => Value::from(humantime::format_duration(*d).to_string()),
        ParamValue::Text(t) => Value::from(t.clone()),
    }
}

impl Report {
    /// Builds the report of `result`.
    pub fn from_run(result: &RunResult, meta: RunMeta) -> Self {
        let s = &result.stats;
        let c = &s.counters;
        let window = result.measured.as_secs_f64().max(1e-9);
        let mut pattern = Map::new();
        pattern.insert("kind".into(), result.pattern.kind.into());
        pattern.insert(
            "loop".into(),
            if result.pattern.open_loop {
                "open"
            } else {
                "closed"
            }
            .into(),
        );
        for (name, value) in &result.pattern.params {
            pattern.insert((*name).to_owned(), param_json(value));
        }
        let mut metrics = BTreeMap::new();
        for (name, h) in [
            ("ttft", &s.ttft),
            ("ttft_corrected", &s.ttft_corrected),
            ("itl", &s.itl),
            ("itl_failed", &s.itl_failed),
            ("tpot", &s.tpot),
            ("e2e", &s.e2e),
            ("e2e_corrected", &s.e2e_corrected),
            ("schedule_lag", &s.schedule_lag),
        ] {
            metrics.insert(name.to_owned(), Metric::from_histogram_ms(h));
        }
        for (name, h) in &s.named {
            let metric = if s.ratios.contains(name) {
                Metric::from_histogram_ratio(h)
            } else {
                Metric::from_histogram_ms(h)
            };
            metrics.insert((*name).to_owned(), metric);
        }
        let source = match (c.tokens_from_server, c.tokens_counted) {
            (0, _) => "counted",
            (_, 0) => "server",
            _ => "mixed",
        };
        let lag_p99 = s.schedule_lag.quantile(0.99);
        let wall = result.elapsed.as_secs_f64();
        let cpu_utilization = match (meta.cpu_s, meta.client_cores) {
            (Some(cpu), Some(cores)) if wall > 0.0 && cores > 0 => {
                Some(cpu / (wall * cores as f64))
            }
            _ => None,
        };
        let lagged = s.schedule_lag.count() >= LIMITED_MIN_SAMPLES
            && lag_p99 > LIMITED_LAG
            && c.queued_late == 0
            && c.overruns == 0;
        let limited_reason = if lagged {
            Some(format!(
                "schedule lag p99 {:.1} ms > 10 ms without a full in-flight cap",
                ms_duration(lag_p99)
            ))
        } else {
            match cpu_utilization {
                Some(u) if u >= LIMITED_CPU && wall >= LIMITED_CPU_MIN_S => Some(format!(
                    "client CPU at {:.0} % of {} core(s): the client, not the server, may be the bottleneck",
                    u * 100.0,
                    meta.client_cores.unwrap_or(1)
                )),
                _ => None,
            }
        };
        // A protocol's settings may repeat a field of `run` (the model it resolved): the
        // field keeps its own value (or takes the setting's when it has none), and the setting
        // goes, so the JSON never holds one key twice (which no reader could read back).
        let mut settings = meta.settings;
        let mut model = meta.model;
        if let Some(Value::String(resolved)) = settings.get("model") {
            model.get_or_insert_with(|| resolved.clone());
        }
        settings.retain(|key, _| !RUN_FIELDS.contains(&key.as_str()));
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            loadkit_version: env!("CARGO_PKG_VERSION").to_owned(),
            run: RunInfo {
                protocol: meta.protocol,
                target: meta.target,
                model,
                pattern,
                started_at: humantime::format_rfc3339_millis(result.started_at).to_string(),
                duration_s: round3(result.measured.as_secs_f64()),
                elapsed_s: round3(result.elapsed.as_secs_f64()),
                warmup_s: round3(result.warmup.as_secs_f64()),
                stop_reason: result.stop_reason.as_str().to_owned(),
                interrupted: result.interrupted(),
                checkpoint: result.checkpoint,
                seed: meta.seed,
                settings,
            },
            totals: Totals {
                requests: c.started,
                succeeded: c.succeeded,
                failed: c.failed,
                missed: c.missed,
                missed_by_reason: MissedByReason {
                    dropped_at_cap: c.missed_dropped_at_cap,
                    queued_at_stop: c.missed_queued_at_stop,
                    skipped_slot: c.missed_skipped_slots,
                },
                succeeded_with_content: c.succeeded_with_content,
                stale_connection_retries: c.stale_connection_retries,
                cancelled: c.cancelled,
                in_flight: if result.checkpoint {
                    c.started
                        .saturating_sub(c.succeeded + c.failed + c.cancelled)
                } else {
                    0
                },
                queued_late: c.queued_late,
                overruns: c.overruns,
                warmup: c.warmup,
                retry_after_waits: c.retry_after_waits,
                retry_after_wait_s: round3(c.retry_after_wait_ms as f64 / 1e3),
                warmup_outcomes: WarmupOutcomes {
                    succeeded: c.warmup_succeeded,
                    failed: c.warmup_failed,
                    cancelled: c.warmup_cancelled,
                    missed: c.warmup_missed,
                    output_tokens: c.warmup_output_tokens,
                },
            },
            throughput: Throughput {
                requests_per_s: round3(c.succeeded as f64 / window),
                output_tokens_per_s: round3(c.output_tokens as f64 / window),
                input_tokens_per_s: round3(c.input_tokens as f64 / window),
            },
            tokens: Tokens {
                input_total: c.input_tokens,
                output_total: c.output_tokens,
                source: source.to_owned(),
            },
            metrics,
            errors: s
                .errors
                .top(TOP_ERRORS)
                .into_iter()
                .map(|g| ErrorRow {
                    class: g.class,
                    message: g.message,
                    count: g.count,
                })
                .collect(),
            timeline: s
                .timeline
                .iter()
                .map(|e| TimelineRow {
                    t_s: e.t_s,
                    intended: e.intended,
                    started: e.started,
                    completed: e.completed,
                    failed: e.failed,
                    failed_by_class: e
                        .failed_by_class
                        .iter()
                        .map(|&(class, n)| (class.to_owned(), n))
                        .collect(),
                    in_flight: e.in_flight,
                    output_tokens: e.output_tokens,
                    ttft_p50: e.ttft_p50.map(ms_duration),
                    e2e_p95: e.e2e_p95.map(ms_duration),
                    server: BTreeMap::new(),
                })
                .collect(),
            generator: Generator {
                lag_p99_ms: ms_duration(lag_p99),
                missed: c.missed,
                limited: limited_reason.is_some(),
                limited_reason,
                cpu_s: meta.cpu_s.map(round3),
                cpu_utilization: cpu_utilization.map(round3),
                peak_rss_mib: meta
                    .peak_rss_bytes
                    .map(|b| round3(b as f64 / (1024.0 * 1024.0))),
                content_events: c.content_chunks,
                bytes: c.bytes,
            },
            consistency: Consistency::default(),
            first_request: s.first_request.map(|f| FirstRequestRow {
                first_request_ms: ms_duration(f.e2e),
                ttft_ms: f.ttft.map(ms_duration),
                succeeded: f.succeeded,
                warmup: f.warmup,
            }),
            slo: None,
            server_metrics: None,
            sections: Map::new(),
            section_summaries: BTreeMap::new(),
        };
        report.consistency = Consistency::check(&report);
        report
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// Reads a report back, refusing schema versions newer than this build.
    pub fn from_json(text: &str) -> Result<Self, ReportError> {
        let report: Report = serde_json::from_str(text)?;
        if report.schema_version > SCHEMA_VERSION {
            return Err(ReportError::Schema(report.schema_version));
        }
        Ok(report)
    }

    /// The success ratio of measured requests (1.0 when nothing ran).
    pub fn success_ratio(&self) -> f64 {
        let done = self.totals.succeeded + self.totals.failed;
        if done == 0 {
            1.0
        } else {
            self.totals.succeeded as f64 / done as f64
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_metrics_are_reported_as_ratios_not_milliseconds() {
        let mut h = Histogram::new();
        // Real-time factors 0.5, 1.0 and 2.0, kept in millionths.
        for millionths in [500_000, 1_000_000, 2_000_000] {
            h.record_value(millionths);
        }
        let m = Metric::from_histogram_ratio(&h);
        assert_eq!((m.unit.as_str(), m.count), ("ratio", 3));
        let near = |v: Option<f64>, x: f64| v.is_some_and(|v| (v - x).abs() < x * 0.002);
        assert!(
            near(m.p50, 1.0) && near(m.min, 0.5) && near(m.max, 2.0),
            "{m:?}"
        );
        assert!(near(m.mean, 3.5 / 3.0), "{m:?}");
        assert_eq!(Metric::from_histogram_ratio(&Histogram::new()).p50, None);
    }
}
