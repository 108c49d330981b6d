//! `--metrics-addr`: the run's counters and latency histograms at `/metrics` in the Prometheus
//! text format while it runs. An engine observer feeds the official client's atomic metrics
//! (no lock, so the collector is never slowed by a scrape), and a small hyper server encodes
//! them on each scrape. The server lives until the report is written.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use loadkit_core::{Control, Event, MissReason, Observer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
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
    ttft: Histogram,
    itl: Histogram,
    e2e: Histogram,
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
            // 1 ms to ~33 s; ITL from 0.25 ms to ~8 s.
            ttft: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            itl: Histogram::new(exponential_buckets(0.000_25, 2.0, 16)),
            e2e: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
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

    /// The exposition text.
    fn encode(&self) -> String {
        let mut out = String::new();
        // Prometheus text: the registry without OpenMetrics' `# EOF` trailer.
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
            .expect("writing into a String cannot fail");
        out
    }
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
                            m.ttft.observe(t.as_secs_f64());
                        }
                        m.e2e.observe(r.e2e().as_secs_f64());
                        for (ns, n) in r.gaps.entries() {
                            let secs = ns as f64 / 1e9;
                            (0..n).for_each(|_| m.itl.observe(secs));
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

fn answer(req: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, kind, body) = if req.uri().path() == "/metrics" {
        (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.encode(),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "loadkit serves /metrics\n".to_owned(),
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
