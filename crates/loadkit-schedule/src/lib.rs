//! Pure arrival and concurrency math for loadkit: *when* requests should start.
//!
//! Two kinds of schedule exist, matching the two ways load is applied:
//!
//! - **Open loop** ([`ArrivalSchedule`]): a non-decreasing sequence of intended start offsets
//!   from the run start. The engine starts one request per arrival whether or not earlier ones
//!   finished, and measures latency from the intended start, so a slow server cannot hide its
//!   slowness by slowing the generator down (no coordinated omission).
//! - **Closed loop** ([`UserSchedule`]): a number of users over time, each looping
//!   request → wait, with optional pacing ([`Pacing`]) such as fixed-interval iterations.
//!
//! Nothing here does I/O or reads a clock: every schedule is a pure function of its parameters
//! (and seed), so the same inputs give the same schedule bit for bit and tests need no timers.
//!
//! ```
//! use loadkit_schedule::{ArrivalSchedule, ConstantRate};
//! use std::time::Duration;
//!
//! let mut s = ConstantRate::new(4.0).unwrap();
//! let first: Vec<_> = (0..3).map(|_| s.next_arrival().unwrap()).collect();
//! assert_eq!(first, [Duration::ZERO, Duration::from_millis(250), Duration::from_millis(500)]);
//! ```

mod closed;
mod open;
mod pattern;

pub use closed::{FixedInterval, FixedUsers, NextStart, Pacing, UserSchedule};
pub use open::{ArrivalSchedule, ConstantRate};
pub use pattern::{ParamValue, Pattern, ScheduleError};
