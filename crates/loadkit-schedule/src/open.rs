//! Open-loop schedules: intended arrival instants, independent of how fast the server answers.

use std::fmt;
use std::time::Duration;

use crate::pattern::{positive_rate, ParamValue, Pattern, ScheduleError};

/// An open-loop schedule: the intended start of every request, as offsets from the run start.
///
/// Offsets never decrease. Several arrivals may share one offset (a burst). `None` means the
/// schedule has no more arrivals; most schedules are infinite and the run's stop condition ends
/// them.
pub trait ArrivalSchedule: Send + fmt::Debug {
    /// The offset of the next intended arrival, or `None` when the schedule is exhausted.
    fn next_arrival(&mut self) -> Option<Duration>;

    /// The pattern's kind and parameters, for the report.
    fn pattern(&self) -> Pattern;
}

impl ArrivalSchedule for Box<dyn ArrivalSchedule> {
    fn next_arrival(&mut self) -> Option<Duration> {
        (**self).next_arrival()
    }
    fn pattern(&self) -> Pattern {
        (**self).pattern()
    }
}

/// `constant`: exactly `rate` arrivals per second, evenly spaced, the first at offset zero.
///
/// Arrival `i` is at `i / rate` seconds, computed from `i` each time (not by adding gaps), so
/// rounding never drifts over a long run.
#[derive(Debug, Clone)]
pub struct ConstantRate {
    rate: f64,
    next: u64,
}

impl ConstantRate {
    /// `rate` requests per second; must be positive and finite.
    pub fn new(rate: f64) -> Result<Self, ScheduleError> {
        Ok(Self { rate: positive_rate("rate", rate)?, next: 0 })
    }
}

impl ArrivalSchedule for ConstantRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        let at = Duration::from_secs_f64(self.next as f64 / self.rate);
        self.next += 1;
        Some(at)
    }

    fn pattern(&self) -> Pattern {
        Pattern { kind: "constant", open_loop: true, params: vec![("rps", ParamValue::Float(self.rate))] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced_without_drift() {
        let mut s = ConstantRate::new(3.0).unwrap();
        let offsets: Vec<Duration> = (0..=30_000).map(|_| s.next_arrival().unwrap()).collect();
        assert_eq!(offsets[3], Duration::from_secs(1));
        assert_eq!(offsets[30_000], Duration::from_secs(10_000));
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn invalid_rates_are_rejected_with_a_message() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = ConstantRate::new(bad).unwrap_err();
            assert!(err.to_string().contains("positive"), "{err}");
        }
    }
}
