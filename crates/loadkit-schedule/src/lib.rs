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
//! Seeded patterns use a built-in xoshiro256** generator and a libm-free logarithm, so a seed
//! means the same schedule on every platform and every Rust version.
//!
//! | `--pattern`      | open loop (rate)  | closed loop (users)                     |
//! |------------------|-------------------|-----------------------------------------|
//! | `constant`       | [`ConstantRate`]  | [`FixedUsers`]                          |
//! | `poisson`        | [`PoissonRate`]   | —                                       |
//! | `burst`          | [`BurstRate`]     | —                                       |
//! | `ramp`           | [`RampRate`]      | [`RampUsers`] (also the spawn-rate form) |
//! | `spike`          | [`SpikeRate`]     | [`SpikeUsers`]                          |
//! | `chaos`          | [`ChaosRate`]     | —                                       |
//! | `fixed-interval` | —                 | [`FixedInterval`]                       |
//! | `stages`         | [`StagesRate`]    | [`StagesUsers`]                         |
//!
//! [`plan_arrivals`] and [`plan_users`] give a schedule's plan per second for dry runs;
//! [`parse_duration`], [`parse_rate`] and [`parse_stages`] read the text forms of parameters.
//! `docs/patterns.md` defines every pattern and its formulas.
//!
//! ```
//! use loadkit_schedule::{ArrivalSchedule, ConstantRate};
//! use std::time::Duration;
//!
//! let mut s = ConstantRate::new(4.0).unwrap();
//! let first: Vec<_> = (0..3).map(|_| s.next_arrival().unwrap()).collect();
//! assert_eq!(first, [Duration::ZERO, Duration::from_millis(250), Duration::from_millis(500)]);
//! ```

mod chaos;
mod closed;
mod curve;
mod num;
mod open;
mod parse;
mod pattern;
mod plan;
mod ramp;
mod rng;
mod spec;
mod spike;
mod stages;
mod user_curve;

pub use chaos::{ChaosRate, ChaosStep, ChaosSteps};
pub use closed::{FixedInterval, FixedUsers, NextStart, Pacing, UserSchedule};
pub use open::{ArrivalSchedule, BurstRate, ConstantRate, PoissonRate};
pub use parse::{format_duration, parse_duration, parse_rate, parse_stages};
pub use pattern::{ParamValue, Pattern, ScheduleError};
pub use plan::{plan_arrivals, plan_users};
pub use ramp::{RampRate, RampUsers};
pub use spec::{PatternSpec, Schedule};
pub use spike::{SpikeRate, SpikeUsers};
pub use stages::{Stage, StagesRate, StagesUsers};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn every_pattern() -> Vec<Pattern> {
        let open: Vec<Box<dyn ArrivalSchedule>> = vec![
            Box::new(ConstantRate::new(5.0).unwrap()),
            Box::new(PoissonRate::new(5.0, 1234).unwrap()),
            Box::new(BurstRate::new(10, S(5)).unwrap()),
            Box::new(RampRate::new(0.0, 5.0, S(5)).unwrap()),
            Box::new(SpikeRate::new(1.0, 5.0, S(1), S(5)).unwrap()),
            Box::new(ChaosRate::new(1.0, 5.0, 5678).unwrap()),
            Box::new(StagesRate::parse("5s:5").unwrap()),
        ];
        let closed: Vec<Box<dyn UserSchedule>> = vec![
            Box::new(FixedUsers::new(5).unwrap()),
            Box::new(FixedInterval::new(5, S(1)).unwrap()),
            Box::new(RampUsers::new(0, 5, S(5)).unwrap()),
            Box::new(RampUsers::spawn_rate(5, 1.0).unwrap()),
            Box::new(SpikeUsers::new(1, 5, S(1), S(5)).unwrap()),
            Box::new(StagesUsers::parse("5s:5").unwrap()),
        ];
        open.iter()
            .map(|s| s.pattern())
            .chain(closed.iter().map(|s| s.pattern()))
            .collect()
    }

    #[test]
    fn every_pattern_names_its_kind_loop_and_parameters() {
        const KINDS: [&str; 8] = [
            "constant",
            "poisson",
            "burst",
            "ramp",
            "spike",
            "chaos",
            "fixed-interval",
            "stages",
        ];
        for p in every_pattern() {
            assert!(KINDS.contains(&p.kind), "{p:?}");
            assert!(!p.params.is_empty(), "{p:?}");
            let mut names: Vec<&str> = p.params.iter().map(|(n, _)| *n).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), p.params.len(), "duplicate parameter in {p:?}");
            // Closed-loop patterns all take a stagger.
            assert_eq!(p.param("stagger").is_some(), !p.open_loop, "{p:?}");
        }
    }

    #[test]
    fn seeded_patterns_report_their_seed() {
        let seeds: Vec<(&str, Option<ParamValue>)> = every_pattern()
            .into_iter()
            .map(|p| (p.kind, p.param("seed").cloned()))
            .collect();
        for (kind, seed) in seeds {
            match kind {
                "poisson" => assert_eq!(seed, Some(ParamValue::Int(1234))),
                "chaos" => assert_eq!(seed, Some(ParamValue::Int(5678))),
                _ => assert_eq!(seed, None, "{kind} is not seeded"),
            }
        }
    }

    #[test]
    fn only_stages_end_by_themselves_in_closed_loop() {
        assert_eq!(StagesUsers::parse("5s:5,1s:0").unwrap().end(), Some(S(6)));
        assert_eq!(RampUsers::new(0, 5, S(5)).unwrap().end(), None);
        assert_eq!(FixedUsers::new(1).unwrap().end(), None);
    }
}
