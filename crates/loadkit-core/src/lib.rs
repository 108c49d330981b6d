//! The loadkit engine: load-test any async Rust function, or any protocol client, with open- or
//! closed-loop schedules, coordinated-omission-free latency and mergeable HDR metrics.
//!
//! The vocabulary, shared by every loadkit protocol crate:
//!
//! - a [`Source`] makes the request to send for each [`RequestCtx`] (the workload: *what*);
//! - a [`Client`] sends one request and marks its milestones on a [`Probe`] (*how*);
//! - a schedule ([`schedule::ArrivalSchedule`] or [`schedule::UserSchedule`]) says *when*;
//! - the [`Runner`] drives them, stamps every milestone with one monotonic clock, and feeds a
//!   single collector task that aggregates into histograms and calls your [`Observer`]s with
//!   [`Event`]s (live views, stop conditions, raw-record sinks);
//! - the result is a [`RunResult`]: counters, histograms, grouped errors and a per-second timeline.
//!
//! Latency is measured both from the actual send and from the *intended* start that the schedule
//! gave, so a server that stalls the generator cannot hide its own slowness.
//!
//! # Example: load-test an async function
//!
//! ```
//! use std::time::Duration;
//! use loadkit_core::{client_fn, RequestCtx, Runner, schedule::ConstantRate};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The function under test: here a 5 ms "service".
//! let client = client_fn(|_seq: u64| async move {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//!     Ok(())
//! });
//! let result = Runner::builder(client, |ctx: &RequestCtx| ctx.seq)
//!     .open_loop(ConstantRate::new(200.0)?)
//!     .requests(50)
//!     .build()?
//!     .run()
//!     .await;
//! assert_eq!(result.stats.counters.succeeded, 50);
//! assert!(result.stats.e2e.quantile(0.5) >= Duration::from_millis(5));
//! # Ok(())
//! # }
//! ```
//!
//! # Invariants
//!
//! - Clients never compute latencies: they mark milestones on the [`Probe`]; the engine stamps the
//!   times with `tokio::time::Instant`, so tests run on tokio's paused clock.
//! - Nothing on the per-chunk path takes a lock or sends a message: the probe keeps a request's
//!   inter-chunk gaps by histogram bucket (allocating only when a new bucket appears) and hands
//!   them over with the finished record, so they land in `itl` or `itl_failed` by outcome.
//! - No per-request sample vectors: everything aggregates into histograms and counters.
//! - Every arrival the schedule produced before the run stopped is started or counted as missed
//!   with its reason ([`MissReason`]), never silently dropped.
//! - The library never prints, exits, reads the environment or installs signal handlers: pass a
//!   [`CancellationToken`] to stop a run.

pub mod audio;
pub mod capacity;
mod client;
mod collector;
mod event;
mod probe;
pub mod prompt;
pub mod protocol;
mod runner;
pub mod slo;
mod stats;
pub mod sweep;
mod timing;

pub use client::{
    client_fn, one_line, Client, FnClient, RequestCtx, RequestError, Source, ONE_LINE_MAX,
};
pub use event::{
    Control, Event, LiveStats, MissReason, Named, NamedTimings, Observer, Phase, RequestRecord,
    SampleUnit, Samples, Tallies, RATIO_SCALE, TTFA,
};
pub use probe::{Probe, Stamp};
pub use runner::{
    CheckpointSink, ErrorRate, RunConfigError, Runner, RunnerBuilder, Saturation, StopReason,
};
pub use stats::{FirstRequest, RunResult, RunStats, TimelineEntry};
pub use tokio_util::sync::CancellationToken;

/// The measurement data structures (histograms, counters, error taxonomy), re-exported.
pub use loadkit_metrics as metrics;
/// The schedule math (open and closed loop patterns), re-exported.
pub use loadkit_schedule as schedule;
