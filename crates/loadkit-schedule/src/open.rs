//! Open-loop schedules: intended arrival instants, independent of how fast the server answers.
//! This file holds the trait and the stationary patterns (`constant`, `poisson`, `burst`); the
//! time-varying ones (`ramp`, `spike`, `chaos`, `stages`) have their own modules.

use std::fmt;
use std::time::Duration;

use crate::curve::{Even, Merge};
use crate::num::{from_nanos, from_secs, nanos};
use crate::pattern::{err, non_negative_rate, positive_duration, positive_rate};
use crate::pattern::{ParamValue, Pattern, ScheduleError};
use crate::rng::Rng;

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
    arrivals: Even,
}

impl ConstantRate {
    /// `rate` requests per second; must be positive and finite.
    pub fn new(rate: f64) -> Result<Self, ScheduleError> {
        Ok(Self {
            arrivals: Even {
                rate: positive_rate("rate", rate)?,
                next: 0,
            },
        })
    }
}

impl ArrivalSchedule for ConstantRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        self.arrivals.next()
    }

    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "constant",
            open_loop: true,
            params: vec![("rps", ParamValue::Float(self.arrivals.rate))],
        }
    }
}

/// `poisson`: a Poisson process of mean rate `rate`: the gaps between arrivals are independent
/// exponential variates of mean `1 / rate`, drawn from a PRNG seeded with `seed`.
///
/// Gap `i` is `−ln(1 − uᵢ) / rate` with `uᵢ` the `i`-th uniform of xoshiro256** seeded through
/// SplitMix64; arrival `n` (from 1) is at the sum of the first `n` gaps, so the first arrival is
/// after one gap, not at zero. The same seed gives the same offsets bit for bit.
#[derive(Debug, Clone)]
pub struct PoissonRate {
    rate: f64,
    seed: u64,
    rng: Rng,
    t: f64,
}

impl PoissonRate {
    /// A mean of `rate` requests per second (positive, finite), seeded with `seed`.
    pub fn new(rate: f64, seed: u64) -> Result<Self, ScheduleError> {
        let rate = positive_rate("poisson rps", rate)?;
        Ok(Self {
            rate,
            seed,
            rng: Rng::new(seed),
            t: 0.0,
        })
    }
}

impl ArrivalSchedule for PoissonRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        self.t += self.rng.next_exp() / self.rate;
        Some(from_secs(self.t))
    }

    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "poisson",
            open_loop: true,
            params: vec![
                ("rps", ParamValue::Float(self.rate)),
                ("seed", ParamValue::Int(self.seed)),
            ],
        }
    }
}

/// The burst instants: `size` arrivals at each `k × every`, `k = 0, 1, 2, …`.
#[derive(Debug, Clone)]
struct Bursts {
    size: u32,
    every: u128,
    k: u128,
    emitted: u32,
}

impl Iterator for Bursts {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let at = from_nanos(self.every * self.k);
        self.emitted += 1;
        if self.emitted == self.size {
            self.emitted = 0;
            self.k += 1;
        }
        Some(at)
    }
}

type BaseStream = std::iter::Flatten<std::option::IntoIter<Even>>;

/// `burst`: every `every`, `size` requests at the same instant (at `0`, `every`, `2 × every`,
/// …), optionally on top of an evenly spaced base rate.
///
/// The base arrivals are those of [`ConstantRate`] (`i / rps`, the first at zero) and are merged
/// with the bursts; a base arrival that falls exactly on a burst instant is not part of the
/// burst, so that instant then holds `size + 1` arrivals. Over any whole number of periods the
/// count is `size` per period plus `rps` per second.
#[derive(Debug, Clone)]
pub struct BurstRate {
    size: u32,
    every: Duration,
    base: f64,
    arrivals: Merge<BaseStream, Bursts>,
}

impl BurstRate {
    /// `size` requests (at least one) at once every `every` (longer than zero), no base rate.
    pub fn new(size: u32, every: Duration) -> Result<Self, ScheduleError> {
        if size == 0 {
            return err("burst size must be at least 1");
        }
        positive_duration("burst every", every)?;
        Ok(Self::build(size, every, 0.0))
    }

    /// Adds `rps` requests per second, evenly spaced, between the bursts (zero: none).
    pub fn with_base_rate(self, rps: f64) -> Result<Self, ScheduleError> {
        let rps = non_negative_rate("burst base rps", rps)?;
        Ok(Self::build(self.size, self.every, rps))
    }

    fn build(size: u32, every: Duration, base: f64) -> Self {
        let base_stream = (base > 0.0).then_some(Even {
            rate: base,
            next: 0,
        });
        let bursts = Bursts {
            size,
            every: nanos(every),
            k: 0,
            emitted: 0,
        };
        Self {
            size,
            every,
            base,
            arrivals: Merge::new(base_stream.into_iter().flatten(), bursts),
        }
    }
}

impl ArrivalSchedule for BurstRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        self.arrivals.next()
    }

    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "burst",
            open_loop: true,
            params: vec![
                ("burst_size", ParamValue::Int(self.size.into())),
                ("burst_every", ParamValue::Duration(self.every)),
                ("rps", ParamValue::Float(self.base)),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan_arrivals;
    use std::collections::BTreeMap;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn take(s: &mut impl ArrivalSchedule, n: usize) -> Vec<Duration> {
        (0..n).map(|_| s.next_arrival().unwrap()).collect()
    }

    #[test]
    fn constant_rate_is_evenly_spaced_without_drift() {
        let mut s = ConstantRate::new(3.0).unwrap();
        let offsets = take(&mut s, 30_001);
        assert_eq!(offsets[3], S(1));
        assert_eq!(offsets[30_000], S(10_000));
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn constant_rate_per_second_counts_are_exact() {
        let cases: [(f64, &[u64]); 4] = [
            (5.0, &[5; 10]),
            (1000.0, &[1000; 10]),
            (2.5, &[3, 2, 3, 2, 3, 2, 3, 2, 3, 2]),
            (0.5, &[1, 0, 1, 0, 1, 0, 1, 0, 1, 0]),
        ];
        for (rate, expect) in cases {
            let got = plan_arrivals(&mut ConstantRate::new(rate).unwrap(), S(10));
            assert_eq!(got, expect, "rate {rate}");
        }
    }

    #[test]
    fn invalid_rates_are_rejected_with_a_message() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = ConstantRate::new(bad).unwrap_err();
            assert!(err.to_string().contains("positive"), "{err}");
            let err = PoissonRate::new(bad, 1).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("poisson rps must be a positive"),
                "{err}"
            );
        }
    }

    #[test]
    fn poisson_mean_rate_is_within_two_percent_over_100k_arrivals() {
        for (rate, seed) in [(50.0, 1), (1000.0, 2), (0.5, 3), (7.0, u64::MAX)] {
            let mut s = PoissonRate::new(rate, seed).unwrap();
            let last = take(&mut s, 100_000).pop().unwrap();
            let measured = 100_000.0 / last.as_secs_f64();
            assert!(
                (measured / rate - 1.0).abs() < 0.02,
                "rate {rate}: measured {measured}"
            );
        }
    }

    #[test]
    fn poisson_gaps_look_exponential() {
        // P(gap > mean) = e⁻¹ for an exponential; the median gap is ln 2 × mean.
        let mut s = PoissonRate::new(100.0, 9).unwrap();
        let offsets = take(&mut s, 100_000);
        let gaps: Vec<f64> = offsets
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        let above = gaps.iter().filter(|&&g| g > 0.01).count() as f64 / gaps.len() as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.01, "{above}");
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn poisson_same_seed_is_identical_and_another_seed_differs() {
        let a = take(&mut PoissonRate::new(20.0, 42).unwrap(), 10_000);
        let b = take(&mut PoissonRate::new(20.0, 42).unwrap(), 10_000);
        let c = take(&mut PoissonRate::new(20.0, 43).unwrap(), 10_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().zip(&c).filter(|(x, y)| x == y).count() < 10);
    }

    #[test]
    fn poisson_offsets_are_golden() {
        // Pinned forever: the same seed must give these offsets on every platform and version.
        let got: Vec<u128> = take(&mut PoissonRate::new(10.0, 42).unwrap(), 4)
            .iter()
            .map(|d| d.as_nanos())
            .collect();
        assert_eq!(got, [8_758_933, 56_398_173, 170_355_168, 428_973_314]);
    }

    fn counts_by_instant(offsets: &[Duration]) -> BTreeMap<Duration, u32> {
        let mut map = BTreeMap::new();
        for at in offsets {
            *map.entry(*at).or_insert(0) += 1;
        }
        map
    }

    #[test]
    fn bursts_are_exactly_size_at_one_instant_every_period() {
        let mut s = BurstRate::new(25, Duration::from_millis(1500)).unwrap();
        let offsets = take(&mut s, 25 * 40);
        let instants = counts_by_instant(&offsets);
        let expect: BTreeMap<Duration, u32> = (0..40)
            .map(|k| (Duration::from_millis(1500) * k, 25))
            .collect();
        assert_eq!(instants, expect);
    }

    #[test]
    fn bursts_sit_on_top_of_the_base_rate() {
        // Base 4/s (every 250ms, first at zero) and 10 at once every 2s: burst instants hold the
        // burst plus the base arrival that falls on them; every other instant holds one.
        let mut s = BurstRate::new(10, S(2))
            .unwrap()
            .with_base_rate(4.0)
            .unwrap();
        let offsets: Vec<Duration> = std::iter::from_fn(|| s.next_arrival())
            .take_while(|&t| t < S(20))
            .collect();
        assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
        let instants = counts_by_instant(&offsets);
        for (at, n) in &instants {
            let expect = if at.as_nanos() % 2_000_000_000 == 0 {
                11
            } else {
                1
            };
            assert_eq!(*n, expect, "at {at:?}");
            assert_eq!(
                at.as_nanos() % 250_000_000,
                0,
                "base arrivals are every 250ms"
            );
        }
        assert_eq!(instants.len(), 80);
        let per_second = plan_arrivals(
            &mut BurstRate::new(10, S(2))
                .unwrap()
                .with_base_rate(4.0)
                .unwrap(),
            S(6),
        );
        assert_eq!(per_second, [14, 4, 14, 4, 14, 4]);
    }

    #[test]
    fn burst_parameters_are_validated() {
        let cases = [
            (
                BurstRate::new(0, S(1)).map(|_| ()),
                "burst size must be at least 1",
            ),
            (
                BurstRate::new(5, Duration::ZERO).map(|_| ()),
                "burst every must be longer than zero",
            ),
            (
                BurstRate::new(5, S(1))
                    .and_then(|b| b.with_base_rate(-1.0))
                    .map(|_| ()),
                "burst base rps",
            ),
            (
                BurstRate::new(5, S(1))
                    .and_then(|b| b.with_base_rate(f64::NAN))
                    .map(|_| ()),
                "non-negative",
            ),
        ];
        for (got, expect) in cases {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        }
    }

    #[test]
    fn stationary_patterns_describe_every_parameter() {
        let p = ConstantRate::new(2.0).unwrap().pattern();
        assert_eq!((p.kind, p.open_loop), ("constant", true));
        assert_eq!(p.params, [("rps", ParamValue::Float(2.0))]);
        let p = PoissonRate::new(3.0, 77).unwrap().pattern();
        assert_eq!(p.kind, "poisson");
        assert_eq!(
            p.params,
            [
                ("rps", ParamValue::Float(3.0)),
                ("seed", ParamValue::Int(77))
            ]
        );
        let p = BurstRate::new(9, S(5))
            .unwrap()
            .with_base_rate(1.5)
            .unwrap()
            .pattern();
        assert_eq!(p.kind, "burst");
        assert_eq!(
            p.params,
            [
                ("burst_size", ParamValue::Int(9)),
                ("burst_every", ParamValue::Duration(S(5))),
                ("rps", ParamValue::Float(1.5))
            ]
        );
    }
}
