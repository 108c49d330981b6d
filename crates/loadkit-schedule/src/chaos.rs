//! `chaos`: a seeded random walk of the arrival rate between `min_rps` and `max_rps`, with
//! random bursts and pauses. The same seed gives the same schedule bit for bit.
//!
//! Time is cut into steps of `step` (default 1s); step `j` covers `[j·step, (j + 1)·step)`.
//! The walk starts at `w₀ = (min + max) / 2`. For each step `j`, four uniforms `u₁ … u₄` in
//! `[0, 1)` are drawn in this order from xoshiro256** seeded with `seed` (always all four):
//!
//! - `w_{j+1} = reflect(w_j + (2u₁ − 1)·volatility·(max − min))`, reflected back into
//!   `[min, max]` at whichever bound it crosses;
//! - the step is a **pause** if `u₂ < pause_probability`: no arrivals at all during it;
//! - otherwise the rate goes linearly from `w_j` to `w_{j+1}` across the step (so it stays in
//!   `[min, max]`), and the step has a **burst** if `u₃ < burst_probability`: `burst_size`
//!   extra arrivals at the single instant `j·step + ⌊u₄·step⌋` (in nanoseconds).
//!
//! Arrivals from the rate are placed by integrating it exactly, as for `ramp`; the walk goes on
//! through pauses (a pause hides the rate, it does not reset it).

use std::iter::Peekable;
use std::time::Duration;

use crate::curve::{CurveArrivals, Piece, RateCurve};
use crate::num::{from_nanos, nanos};
use crate::open::ArrivalSchedule;
use crate::pattern::{
    err, non_negative_rate, positive_duration, ParamValue, Pattern, ScheduleError,
};
use crate::rng::Rng;

/// One step of a chaos schedule, as [`ChaosRate::steps`] lists them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChaosStep {
    /// The step's index `j`.
    pub index: u64,
    /// When the step starts (`j × step`).
    pub start: Duration,
    /// When the step ends (`(j + 1) × step`).
    pub end: Duration,
    /// The rate at the start of the step, requests per second (zero in a pause).
    pub from_rps: f64,
    /// The rate at the end of the step, requests per second (zero in a pause); the rate is
    /// linear in between.
    pub to_rps: f64,
    /// `true` when the step is a pause: no arrivals at all.
    pub pause: bool,
    /// The instant of the step's burst of `burst_size` arrivals, if it has one.
    pub burst_at: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    min: f64,
    max: f64,
    seed: u64,
    step: Duration,
    volatility: f64,
    burst_probability: f64,
    burst_size: u32,
    pause_probability: f64,
}

/// The steps of a chaos schedule, in order, from step 0. Infinite.
#[derive(Debug, Clone)]
pub struct ChaosSteps {
    params: Params,
    rng: Rng,
    walk: f64,
    index: u64,
}

impl ChaosSteps {
    fn new(params: Params) -> Self {
        Self {
            params,
            rng: Rng::new(params.seed),
            walk: (params.min + params.max) / 2.0,
            index: 0,
        }
    }
}

impl Iterator for ChaosSteps {
    type Item = ChaosStep;

    fn next(&mut self) -> Option<ChaosStep> {
        let p = &self.params;
        let (u1, u2, u3, u4) = (
            self.rng.next_f64(),
            self.rng.next_f64(),
            self.rng.next_f64(),
            self.rng.next_f64(),
        );
        let mut next = self.walk + (2.0 * u1 - 1.0) * p.volatility * (p.max - p.min);
        if next > p.max {
            next = 2.0 * p.max - next;
        } else if next < p.min {
            next = 2.0 * p.min - next;
        }
        let next = next.clamp(p.min, p.max);
        let step = nanos(p.step);
        let start = u128::from(self.index) * step;
        let pause = u2 < p.pause_probability;
        let burst = !pause && u3 < p.burst_probability;
        let out = ChaosStep {
            index: self.index,
            start: from_nanos(start),
            end: from_nanos(start + step),
            from_rps: if pause { 0.0 } else { self.walk },
            to_rps: if pause { 0.0 } else { next },
            pause,
            burst_at: burst.then(|| from_nanos(start + (u4 * step as f64) as u128)),
        };
        self.walk = next;
        self.index += 1;
        Some(out)
    }
}

/// The rate pieces of the steps (piece `j` is step `j`).
#[derive(Debug, Clone)]
struct ChaosCurve(ChaosSteps);

impl RateCurve for ChaosCurve {
    fn piece(&mut self, index: u64) -> Option<Piece> {
        let step = self.0.next()?;
        debug_assert_eq!(step.index, index);
        let s = |d: Duration| nanos(d) as f64 / 1e9;
        Some(Piece {
            start: s(step.start),
            len: s(step.end) - s(step.start),
            from: step.from_rps,
            to: step.to_rps,
        })
    }
}

/// The bursts of the steps, found lazily: the scan only looks at steps that start no later
/// than the next rate arrival, so a rare (or absent) burst never makes it run ahead.
#[derive(Debug, Clone)]
struct ChaosBursts {
    steps: ChaosSteps,
    /// The next burst found and the arrivals it still has to give.
    pending: Option<(Duration, u32)>,
}

impl ChaosBursts {
    /// The next burst arrival if it is not after `bound` (`None`: no bound).
    fn next_until(&mut self, bound: Option<Duration>) -> Option<Duration> {
        let step = nanos(self.steps.params.step);
        while self.pending.is_none() {
            let next_start = from_nanos(u128::from(self.steps.index) * step);
            if bound.is_some_and(|b| next_start > b) {
                return None;
            }
            let s = self.steps.next()?;
            self.pending = s.burst_at.map(|at| (at, self.steps.params.burst_size));
        }
        let (at, left) = self.pending?;
        if bound.is_some_and(|b| at > b) {
            return None;
        }
        self.pending = (left > 1).then_some((at, left - 1));
        Some(at)
    }
}

/// `chaos` (open loop): see the module documentation for the exact definition. Defaults:
/// `step` 1s, `volatility` 0.25, `burst_probability` 0.05, `burst_size` ⌈max_rps⌉ (one second at
/// the top rate, at least 1), `pause_probability` 0.05.
#[derive(Debug, Clone)]
pub struct ChaosRate {
    params: Params,
    curve: Peekable<CurveArrivals<ChaosCurve>>,
    bursts: ChaosBursts,
}

impl ChaosRate {
    /// A walk between `min_rps` (zero or more) and `max_rps` (positive, at least `min_rps`),
    /// seeded with `seed`, with the default step, volatility, bursts and pauses.
    pub fn new(min_rps: f64, max_rps: f64, seed: u64) -> Result<Self, ScheduleError> {
        non_negative_rate("chaos min rps", min_rps)?;
        non_negative_rate("chaos max rps", max_rps)?;
        if min_rps > max_rps {
            return err(format!(
                "chaos min rps ({min_rps}) must not exceed max rps ({max_rps})"
            ));
        }
        if max_rps == 0.0 {
            return err("chaos max rps must be above 0");
        }
        Ok(Self::build(Params {
            min: min_rps,
            max: max_rps,
            seed,
            step: Duration::from_secs(1),
            volatility: 0.25,
            burst_probability: 0.05,
            burst_size: (max_rps.ceil() as u32).max(1),
            pause_probability: 0.05,
        }))
    }

    /// How long each step of the walk lasts (longer than zero).
    pub fn with_step(self, step: Duration) -> Result<Self, ScheduleError> {
        positive_duration("chaos step", step)?;
        Ok(Self::build(Params {
            step,
            ..self.params
        }))
    }

    /// The largest change of the rate in one step, as a fraction of `max_rps − min_rps`, in
    /// `(0, 1]`.
    pub fn with_volatility(self, volatility: f64) -> Result<Self, ScheduleError> {
        if !(volatility > 0.0 && volatility <= 1.0) {
            return err(format!(
                "chaos volatility must be above 0 and at most 1, got {volatility}"
            ));
        }
        Ok(Self::build(Params {
            volatility,
            ..self.params
        }))
    }

    /// Each step that is not a pause has a burst of `size` (at least 1) simultaneous arrivals
    /// with probability `probability` (in `[0, 1]`; zero: no bursts).
    pub fn with_bursts(self, probability: f64, size: u32) -> Result<Self, ScheduleError> {
        let burst_probability =
            crate::pattern::probability("chaos burst probability", probability)?;
        if size == 0 {
            return err("chaos burst size must be at least 1");
        }
        Ok(Self::build(Params {
            burst_probability,
            burst_size: size,
            ..self.params
        }))
    }

    /// Each step that is not a pause has a burst with probability `probability` (in `[0, 1]`),
    /// keeping the burst size.
    pub fn with_burst_probability(self, probability: f64) -> Result<Self, ScheduleError> {
        let size = self.params.burst_size;
        self.with_bursts(probability, size)
    }

    /// A burst is `size` (at least 1) simultaneous arrivals, keeping the burst probability.
    pub fn with_burst_size(self, size: u32) -> Result<Self, ScheduleError> {
        let probability = self.params.burst_probability;
        self.with_bursts(probability, size)
    }

    /// Each step is a pause (no arrivals) with probability `probability`, in `[0, 1)` (zero:
    /// no pauses).
    pub fn with_pauses(self, probability: f64) -> Result<Self, ScheduleError> {
        let pause_probability =
            crate::pattern::probability("chaos pause probability", probability)?;
        if pause_probability == 1.0 {
            return err("chaos pause probability must be below 1, or no request would ever start");
        }
        Ok(Self::build(Params {
            pause_probability,
            ..self.params
        }))
    }

    /// The schedule's steps from the start (independent of how far the schedule has been read).
    pub fn steps(&self) -> ChaosSteps {
        ChaosSteps::new(self.params)
    }

    fn build(params: Params) -> Self {
        let curve = CurveArrivals::new(ChaosCurve(ChaosSteps::new(params)));
        let bursts = ChaosBursts {
            steps: ChaosSteps::new(params),
            pending: None,
        };
        Self {
            params,
            curve: curve.peekable(),
            bursts,
        }
    }
}

impl ArrivalSchedule for ChaosRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        // A burst goes first when it is at or before the next rate arrival.
        let rate_next = self.curve.peek().copied();
        self.bursts
            .next_until(rate_next)
            .or_else(|| self.curve.next())
    }

    fn pattern(&self) -> Pattern {
        let p = &self.params;
        Pattern {
            kind: "chaos",
            open_loop: true,
            params: vec![
                ("min_rps", ParamValue::Float(p.min)),
                ("max_rps", ParamValue::Float(p.max)),
                ("seed", ParamValue::Int(p.seed)),
                ("step", ParamValue::Duration(p.step)),
                ("volatility", ParamValue::Float(p.volatility)),
                ("burst_probability", ParamValue::Float(p.burst_probability)),
                ("burst_size", ParamValue::Int(p.burst_size.into())),
                ("pause_probability", ParamValue::Float(p.pause_probability)),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn arrivals_until(s: &mut ChaosRate, horizon: Duration) -> Vec<Duration> {
        std::iter::from_fn(|| s.next_arrival())
            .take_while(|&t| t < horizon)
            .collect()
    }

    /// The precise envelope: per step, the rate arrivals (all arrivals minus the burst) number
    /// `∫ rate` over the step ± 1, which lies in `[min·step, max·step]` outside pauses and is
    /// zero in a pause; each burst is exactly `burst_size` arrivals at its one instant.
    fn check_envelope(s: ChaosRate, steps: u64) {
        let p = s.params;
        let step_s = p.step.as_secs_f64();
        let horizon = p.step * steps as u32;
        let arrivals = arrivals_until(&mut s.clone(), horizon);
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
        let mut at_instant: BTreeMap<Duration, u32> = BTreeMap::new();
        for a in &arrivals {
            *at_instant.entry(*a).or_insert(0) += 1;
        }
        let (mut pauses, mut bursts) = (0, 0);
        for step in s.steps().take(steps as usize) {
            let in_step = arrivals
                .iter()
                .filter(|&&a| a >= step.start && a < step.end)
                .count() as f64;
            for r in [step.from_rps, step.to_rps] {
                assert!(
                    step.pause || (p.min..=p.max).contains(&r),
                    "rate {r} out of range in {step:?}"
                );
            }
            let burst = match step.burst_at {
                Some(at) => {
                    bursts += 1;
                    assert!(at >= step.start && at < step.end);
                    // Rate arrivals landing on the very same nanosecond are vanishingly rare; the
                    // instant holds the burst plus at most one of them.
                    let n = at_instant[&at];
                    assert!(n == p.burst_size || n == p.burst_size + 1, "{n} at {at:?}");
                    f64::from(p.burst_size)
                }
                None => 0.0,
            };
            let rate_arrivals = in_step - burst;
            if step.pause {
                pauses += 1;
                assert_eq!(in_step, 0.0, "arrivals in a pause: {step:?}");
                assert!(step.burst_at.is_none());
            } else {
                let area = (step.from_rps + step.to_rps) / 2.0 * step_s;
                assert!(
                    (rate_arrivals - area).abs() <= 1.0 + 1e-9,
                    "{rate_arrivals} vs {area} in {step:?}"
                );
                assert!(
                    rate_arrivals >= p.min * step_s - 1.0 && rate_arrivals <= p.max * step_s + 1.0
                );
            }
        }
        assert!(
            p.pause_probability == 0.0 || pauses > 0,
            "no pause in {steps} steps"
        );
        assert!(
            p.burst_probability == 0.0 || bursts > 0,
            "no burst in {steps} steps"
        );
    }

    #[test]
    fn chaos_stays_within_its_envelope() {
        check_envelope(ChaosRate::new(10.0, 100.0, 1).unwrap(), 600);
        check_envelope(ChaosRate::new(0.0, 20.0, 2).unwrap(), 600);
        check_envelope(ChaosRate::new(50.0, 50.0, 3).unwrap(), 100);
        check_envelope(
            ChaosRate::new(5.0, 500.0, 4)
                .unwrap()
                .with_step(MS(250))
                .unwrap()
                .with_volatility(1.0)
                .unwrap()
                .with_bursts(0.3, 7)
                .unwrap()
                .with_pauses(0.2)
                .unwrap(),
            800,
        );
        check_envelope(
            ChaosRate::new(1.0, 3.0, 5)
                .unwrap()
                .with_bursts(0.0, 1)
                .unwrap()
                .with_pauses(0.0)
                .unwrap(),
            300,
        );
    }

    #[test]
    fn chaos_walk_moves_and_visits_the_range() {
        let s = ChaosRate::new(0.0, 100.0, 11)
            .unwrap()
            .with_pauses(0.0)
            .unwrap();
        let rates: Vec<f64> = s.steps().take(2000).map(|st| st.to_rps).collect();
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &r| (a.min(r), b.max(r)));
        assert!(lo < 10.0 && hi > 90.0, "walk range {lo}..{hi}");
        for w in s.steps().take(2000).collect::<Vec<_>>().windows(2) {
            assert_eq!(
                w[0].to_rps, w[1].from_rps,
                "the rate is continuous between steps"
            );
            assert!(
                (w[0].to_rps - w[0].from_rps).abs() <= 25.0 + 1e-9,
                "volatility bound"
            );
        }
    }

    #[test]
    fn chaos_is_reproducible_and_seed_dependent() {
        let run = |seed| arrivals_until(&mut ChaosRate::new(5.0, 80.0, seed).unwrap(), S(120));
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let steps = |seed| {
            ChaosRate::new(5.0, 80.0, seed)
                .unwrap()
                .steps()
                .take(100)
                .collect::<Vec<_>>()
        };
        assert_eq!(steps(7), steps(7));
        assert_ne!(steps(7), steps(8));
        // Reading the schedule does not change its steps.
        let mut s = ChaosRate::new(5.0, 80.0, 7).unwrap();
        let _ = arrivals_until(&mut s, S(10));
        assert_eq!(s.steps().take(100).collect::<Vec<_>>(), steps(7));
    }

    #[test]
    fn chaos_arrivals_are_golden() {
        // Pinned forever: the same seed must give these offsets on every platform and version.
        let mut s = ChaosRate::new(1.0, 10.0, 42).unwrap();
        let got: Vec<u128> = (0..4)
            .map(|_| s.next_arrival().unwrap().as_nanos())
            .collect();
        assert_eq!(got, [0, 187_823_796, 389_457_567, 608_486_008]);
    }

    #[test]
    fn chaos_parameters_are_validated() {
        let base = || ChaosRate::new(1.0, 10.0, 0).unwrap();
        let cases = [
            (
                ChaosRate::new(10.0, 5.0, 0).map(|_| ()),
                "chaos min rps (10) must not exceed max rps (5)",
            ),
            (
                ChaosRate::new(-1.0, 5.0, 0).map(|_| ()),
                "chaos min rps must be a non-negative",
            ),
            (
                ChaosRate::new(0.0, f64::NAN, 0).map(|_| ()),
                "chaos max rps must be a non-negative",
            ),
            (
                ChaosRate::new(0.0, 0.0, 0).map(|_| ()),
                "chaos max rps must be above 0",
            ),
            (
                base().with_step(Duration::ZERO).map(|_| ()),
                "chaos step must be longer than zero",
            ),
            (
                base().with_volatility(0.0).map(|_| ()),
                "chaos volatility must be above 0 and at most 1",
            ),
            (base().with_volatility(1.5).map(|_| ()), "chaos volatility"),
            (
                base().with_bursts(1.5, 3).map(|_| ()),
                "chaos burst probability must be between 0 and 1",
            ),
            (
                base().with_bursts(0.5, 0).map(|_| ()),
                "chaos burst size must be at least 1",
            ),
            (
                base().with_pauses(1.0).map(|_| ()),
                "chaos pause probability must be below 1",
            ),
            (
                base().with_pauses(-0.1).map(|_| ()),
                "chaos pause probability must be between 0 and 1",
            ),
        ];
        for (got, expect) in cases {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        }
    }

    #[test]
    fn chaos_pattern_lists_every_parameter_including_the_seed() {
        let p = ChaosRate::new(2.0, 9.5, 99).unwrap().pattern();
        assert_eq!((p.kind, p.open_loop), ("chaos", true));
        assert_eq!(
            p.params,
            [
                ("min_rps", ParamValue::Float(2.0)),
                ("max_rps", ParamValue::Float(9.5)),
                ("seed", ParamValue::Int(99)),
                ("step", ParamValue::Duration(S(1))),
                ("volatility", ParamValue::Float(0.25)),
                ("burst_probability", ParamValue::Float(0.05)),
                ("burst_size", ParamValue::Int(10)),
                ("pause_probability", ParamValue::Float(0.05)),
            ]
        );
    }
}
