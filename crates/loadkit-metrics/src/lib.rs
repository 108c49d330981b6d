//! Measurement data structures for loadkit: HDR histograms in nanoseconds, counters, a bounded
//! error taxonomy and rotating windows for "last N seconds" percentiles.
//!
//! Everything here is pure data: no I/O, no clocks, no async. The engine in `loadkit-core` feeds
//! these structures from a single collector task, and `loadkit-report` serializes them. Every
//! structure merges exactly, so shards of one run combine into the same numbers a single machine
//! would have produced.
//!
//! ```
//! use loadkit_metrics::Histogram;
//! use std::time::Duration;
//!
//! let mut ttft = Histogram::new();
//! for ms in 1..=100 {
//!     ttft.record(Duration::from_millis(ms));
//! }
//! let p50 = ttft.quantile(0.5);
//! assert!((p50.as_secs_f64() * 1e3 - 50.0).abs() < 0.1);
//!
//! // The V2 (deflate, base64) form round-trips exactly and merges exactly.
//! let encoded = ttft.to_base64();
//! let mut merged = Histogram::from_base64(&encoded).unwrap();
//! merged.merge(&ttft);
//! assert_eq!(merged.count(), 200);
//! ```

mod counters;
mod errors;
mod histogram;
mod sparse;
mod window;

pub use counters::Counters;
pub use errors::{ErrorGroup, ErrorKind, ErrorTable, TimeoutPhase};
pub use histogram::{DecodeError, Histogram, Summary};
pub use sparse::{bucket_key, SparseHistogram};
pub use window::RotatingWindow;
