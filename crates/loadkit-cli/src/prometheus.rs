//! `--metrics-addr`: the run's counters and latency histograms at `/metrics` in the Prometheus
//! text format while it runs. An engine observer feeds atomic metrics (the official client's
//! counters and gauge, and [`Latency`], a lock-free histogram of our own, because the client's
//! `Histogram` takes a mutex per observation and has no way to add a bucket's count at once),
//! and a small hyper server encodes them on each scrape. The server lives until the report is
//! written.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use loadkit_core::{Control, Event, MissReason, Observer};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;

use crate::Fatal;

/// One label of a family: `class` or `reason`.
type Label = Vec<(&'static str, &'static str)>;

/// The metrics, shared by the observer (writes) and the server (reads).
pub(crate) struct Metrics {
    registry: Registry,
    started: Counter,
    succeeded: Counter,
    failed: Family<Label, Counter>,
    cancelled: Counter,
    missed: Family<Label, Counter>,
    in_flight: Gauge,
    output_tokens: Counter,
    ttft: Latency,
    itl: Latency,
    e2e: Latency,
}

/// A Prometheus histogram of durations on atomics: `observe_n` adds `n` values at once (a
/// request's gaps come by bucket), and nothing locks. Exponential bounds `first × 2^i`.
#[derive(Debug, Clone)]
struct Latency(Arc<LatencyInner>);

#[derive(Debug)]
struct LatencyInner {
    /// Upper bounds in nanoseconds; the last bucket (`+Inf`) has none.
    bounds_ns: Vec<u64>,
    /// Counts per bucket (not cumulative), one more than `bounds_ns`.
    counts: Vec<AtomicU64>,
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Latency {
    fn new(first: Duration, buckets: u32) -> Self {
        let first = u64::try_from(first.as_nanos()).unwrap_or(u64::MAX);
        let bounds_ns: Vec<u64> = (0..buckets).map(|i| first.saturating_mul(1 << i)).collect();
        Latency(Arc::new(LatencyInner {
            counts: (0..=bounds_ns.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds_ns,
            sum_ns: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }))
    }

    fn observe_n(&self, value_ns: u64, n: u64) {
        let h = &self.0;
        let bucket = h.bounds_ns.partition_point(|&b| b < value_ns);
        h.counts[bucket].fetch_add(n, Ordering::Relaxed);
        h.sum_ns
            .fetch_add(value_ns.saturating_mul(n), Ordering::Relaxed);
        h.count.fetch_add(n, Ordering::Relaxed);
    }

    fn observe(&self, value: Duration) {
        self.observe_n(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX), 1);
    }
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        let secs = |ns: u64| ns as f64 / 1e9;
        let buckets: Vec<(f64, u64)> = h
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let bound = h.bounds_ns.get(i).map_or(f64::INFINITY, |&b| secs(b));
                (bound, c.load(Ordering::Relaxed))
            })
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            secs(h.sum_ns.load(Ordering::Relaxed)),
            h.count.load(Ordering::Relaxed),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Metrics {
    /// Metrics labelled with the run's protocol, target (secrets already redacted) and
    /// scenario (empty when none).
    pub(crate) fn new(protocol: &str, target: &str, scenario: &str) -> Self {
        let labels = [
            ("protocol", protocol),
            ("target", target),
            ("scenario", scenario),
        ]
        .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v.to_owned())));
        let mut registry = Registry::with_prefix_and_labels("loadkit", labels.into_iter());
        let m = Metrics {
            started: Counter::default(),
            succeeded: Counter::default(),
            failed: Family::default(),
            cancelled: Counter::default(),
            missed: Family::default(),
            in_flight: Gauge::default(),
            output_tokens: Counter::default(),
            // 1 ms to ~33 s; ITL from 0.25 ms to ~8 s; E2E to ~131 s.
            ttft: Latency::new(Duration::from_millis(1), 16),
            itl: Latency::new(Duration::from_micros(250), 16),
            e2e: Latency::new(Duration::from_millis(1), 18),
            registry: Registry::default(),
        };
        registry.register(
            "requests_started",
            "Measured requests sent (warm-up excluded)",
            m.started.clone(),
        );
        registry.register(
            "requests_succeeded",
            "Measured requests that succeeded",
            m.succeeded.clone(),
        );
        registry.register(
            "requests_failed",
            "Measured requests that failed, by error class",
            m.failed.clone(),
        );
        registry.register(
            "requests_cancelled",
            "Measured requests cancelled because the run stopped",
            m.cancelled.clone(),
        );
        registry.register(
            "arrivals_missed",
            "Arrivals the schedule produced that never started, by reason",
            m.missed.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests in flight now (warm-up included)",
            m.in_flight.clone(),
        );
        registry.register(
            "output_tokens",
            "Output tokens of measured successful requests",
            m.output_tokens.clone(),
        );
        registry.register_with_unit(
            "ttft",
            "Time to first token of measured successful requests",
            Unit::Seconds,
            m.ttft.clone(),
        );
        registry.register_with_unit(
            "itl",
            "Gaps between content chunks of measured successful requests",
            Unit::Seconds,
            m.itl.clone(),
        );
        registry.register_with_unit(
            "e2e",
            "End to end latency of measured successful requests",
            Unit::Seconds,
            m.e2e.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The exposition: OpenMetrics (what the client writes, `# EOF` included) when `open`,
    /// else the Prometheus text format 0.0.4.
    fn encode(&self, open: bool) -> String {
        let mut out = String::new();
        if open {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
                .expect("writing into a String cannot fail");
            return out;
        }
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
            .expect("writing into a String cannot fail");
        to_text_format(&out)
    }
}

/// OpenMetrics text (without `# EOF`) as the Prometheus text format 0.0.4. That format names a
/// counter's family by its sample (`x_total`, where OpenMetrics says `x`) and has no `# UNIT`
/// line; parsers of it (Prometheus's own, the Python client's) otherwise type the counters
/// `unknown`.
fn to_text_format(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The observer feeding [`Metrics`] from the collector's events.
pub(crate) struct Feed {
    metrics: Arc<Metrics>,
    /// Arrivals intended before this are warm-up ones.
    warmup: Duration,
}

impl Feed {
    pub(crate) fn new(metrics: Arc<Metrics>, warmup: Duration) -> Self {
        Self { metrics, warmup }
    }
}

impl Observer for Feed {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        let m = &self.metrics;
        match event {
            Event::RequestStarted { warmup, .. } => {
                m.in_flight.inc();
                if !warmup {
                    m.started.inc();
                }
            }
            Event::RequestFinished(r) => {
                m.in_flight.dec();
                if r.warmup {
                    return Control::Continue;
                }
                match &r.error {
                    None => {
                        m.succeeded.inc();
                        m.output_tokens.inc_by(r.output_tokens_or_counted());
                        if let Some(t) = r.ttft() {
                            m.ttft.observe(t);
                        }
                        m.e2e.observe(r.e2e());
                        // One atomic add per bucket of gaps, not per gap.
                        for (ns, n) in r.gaps.entries() {
                            m.itl.observe_n(ns, n);
                        }
                    }
                    Some(_) if r.is_cancelled() => {
                        m.cancelled.inc();
                    }
                    Some(e) => {
                        m.failed
                            .get_or_create(&vec![("class", e.kind.class())])
                            .inc();
                    }
                }
            }
            Event::ArrivalMissed {
                scheduled,
                count,
                reason,
            } if *scheduled >= self.warmup => {
                let reason = match reason {
                    MissReason::DroppedAtCap => "dropped_at_cap",
                    MissReason::QueuedAtStop => "queued_at_stop",
                    MissReason::SkippedSlot => "skipped_slot",
                };
                m.missed
                    .get_or_create(&vec![("reason", reason)])
                    .inc_by(*count);
            }
            _ => {}
        }
        Control::Continue
    }
}

/// The `/metrics` server; stops when dropped.
pub(crate) struct Exporter {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Exporter {
    /// Listens on `addr` (bad address or port taken: a usage error) and serves `metrics`.
    pub(crate) async fn start(
        addr: &str,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, SocketAddr), Fatal> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Fatal::usage(format!("--metrics-addr: cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Fatal::usage(format!("--metrics-addr {addr}: {e}")))?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let metrics = Arc::clone(&metrics);
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let metrics = Arc::clone(&metrics);
                            async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics)) }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok((Self { task }, local))
    }
}

/// `/metrics` in the format the scraper asks for (Prometheus sends an `Accept` listing
/// OpenMetrics first; curl and most tools get the plain text format).
fn answer(req: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let open = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (status, kind, body) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "loadkit serves /metrics\n".to_owned(),
        )
    } else if open {
        (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(true),
        )
    } else {
        (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.encode(false),
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative_with_an_inf_bucket_and_take_counts_at_once() {
        let h = Latency::new(Duration::from_millis(1), 3); // le 0.001, 0.002, 0.004, +Inf
        h.observe(Duration::from_micros(1_000)); // on a bound: counted in it
        h.observe_n(3_000_000, 4);
        h.observe(Duration::from_secs(1));
        let mut registry = Registry::default();
        registry.register_with_unit("x", "x", Unit::Seconds, h);
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &registry).unwrap();
        for line in [
            "x_seconds_bucket{le=\"0.001\"} 1",
            "x_seconds_bucket{le=\"0.002\"} 1",
            "x_seconds_bucket{le=\"0.004\"} 5",
            "x_seconds_bucket{le=\"+Inf\"} 6",
            "x_seconds_count 6",
            "x_seconds_sum 1.013",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }

    #[test]
    fn the_text_format_names_counter_families_by_their_samples_and_has_no_unit_lines() {
        let m = Metrics::new("openai-chat", "http://127.0.0.1:1/v1", "");
        m.started.inc();
        let text = m.encode(false);
        assert!(
            text.contains("# TYPE loadkit_requests_started_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP loadkit_requests_started_total Measured"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE loadkit_ttft_seconds histogram\n"),
            "{text}"
        );
        assert!(
            !text.contains("# UNIT") && !text.contains("# EOF"),
            "{text}"
        );
        let open = m.encode(true);
        assert!(open.contains("# TYPE loadkit_requests_started counter\n"));
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
