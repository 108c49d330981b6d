//! `stages`: a k6-style list of `(duration, target)` steps; during each step the rate (open
//! loop) or the user count (closed loop) goes linearly from the previous target to this one.

use std::fmt;
use std::time::Duration;

use crate::closed::UserSchedule;
use crate::curve::{CurveArrivals, Piece, Pieces};
use crate::num::{from_nanos, nanos};
use crate::open::ArrivalSchedule;
use crate::parse::{format_duration, parse_stages};
use crate::pattern::{err, non_negative_rate, ParamValue, Pattern, ScheduleError};
use crate::user_curve::UserCurve;

/// One step of a `stages` pattern: over `duration`, go linearly from the previous target to
/// `target` (a zero duration jumps at once). Written `DURATION:TARGET`, e.g. `30s:10`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// How long the step lasts.
    pub duration: Duration,
    /// The rate (requests per second, open loop) or users (closed loop) at the step's end.
    pub target: f64,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", format_duration(self.duration), self.target)
    }
}

/// The canonical text form of a stage list: `30s:10,2m:50,30s:0`.
fn stages_text(stages: &[Stage]) -> String {
    stages
        .iter()
        .map(Stage::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The checks common to both forms.
fn check_stages(stages: &[Stage]) -> Result<(), ScheduleError> {
    if stages.is_empty() {
        return err("stages: no stages given");
    }
    for (i, s) in stages.iter().enumerate() {
        if !(s.target.is_finite() && s.target >= 0.0) {
            return err(format!(
                "stages: stage {} target must be a non-negative number, got {}",
                i + 1,
                s.target
            ));
        }
    }
    if stages.iter().all(|s| s.duration.is_zero()) {
        return err("stages: the stages last 0s in total; give at least one stage a duration");
    }
    Ok(())
}

/// `stages` (open loop): the rate starts at `start` (default 0) requests per second and follows
/// each stage in turn, linearly from the previous target to the stage's target over its
/// duration. After the last stage the schedule ends (`next_arrival` returns `None`), as k6's
/// stages end the test.
///
/// Arrivals are placed by integrating the rate exactly: arrival `k` is at the first `t` where
/// `∫₀ᵗ rate > k`.
#[derive(Debug, Clone)]
pub struct StagesRate {
    start: f64,
    stages: Vec<Stage>,
    arrivals: CurveArrivals<Pieces>,
}

impl StagesRate {
    /// Rate stages starting from 0 requests per second. At least one stage, targets
    /// non-negative, some stage longer than zero, and some request to start.
    pub fn new(stages: Vec<Stage>) -> Result<Self, ScheduleError> {
        Self::from_start(0.0, stages)
    }

    /// Rate stages starting from `start` requests per second (zero or more) at offset zero.
    pub fn from_start(start: f64, stages: Vec<Stage>) -> Result<Self, ScheduleError> {
        let start = non_negative_rate("stages start rps", start)?;
        check_stages(&stages)?;
        Self::build(start, stages)
    }

    /// Parses the text form, e.g. `30s:10,2m:50,30s:0` (see [`parse_stages`]), from 0.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        Self::new(parse_stages(text)?)
    }

    /// The total duration of the stages: the schedule has no arrivals from then on.
    pub fn duration(&self) -> Duration {
        from_nanos(self.stages.iter().map(|s| nanos(s.duration)).sum())
    }

    fn build(start: f64, stages: Vec<Stage>) -> Result<Self, ScheduleError> {
        let mut pieces = Vec::with_capacity(stages.len());
        let (mut begin, mut from) = (0u128, start);
        for s in &stages {
            let end = begin + nanos(s.duration);
            let len = end as f64 / 1e9 - begin as f64 / 1e9;
            pieces.push(Piece {
                start: begin as f64 / 1e9,
                len,
                from,
                to: s.target,
            });
            (begin, from) = (end, s.target);
        }
        if pieces.iter().all(|p| p.area() <= 0.0) {
            return err("stages: the rate is 0 throughout, so no request would ever start");
        }
        Ok(Self {
            start,
            stages,
            arrivals: CurveArrivals::new(Pieces(pieces)),
        })
    }
}

impl ArrivalSchedule for StagesRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        self.arrivals.next()
    }

    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "stages",
            open_loop: true,
            params: vec![
                ("stages", ParamValue::Text(stages_text(&self.stages))),
                ("start", ParamValue::Float(self.start)),
            ],
        }
    }
}

/// `stages` (closed loop): the user count starts at `start` (default 0) and follows each stage
/// in turn, linearly from the previous target to the stage's target over its duration, in
/// whole users (as the closed-loop `ramp`: `users = from ± ⌊|to − from|·τ / duration⌋`, each
/// change at an exact nanosecond). After the last stage the count holds at the last target,
/// and [`UserSchedule::end`] says the schedule is over. User `i` first starts no earlier than
/// `i × stagger`.
#[derive(Debug, Clone)]
pub struct StagesUsers {
    start: u32,
    stages: Vec<Stage>,
    curve: UserCurve,
    stagger: Duration,
}

impl StagesUsers {
    /// User stages starting from 0 users. At least one stage, targets whole numbers, some stage
    /// longer than zero, and some user to start.
    pub fn new(stages: Vec<Stage>) -> Result<Self, ScheduleError> {
        Self::from_start(0, stages)
    }

    /// User stages starting from `start` users at offset zero.
    pub fn from_start(start: u32, stages: Vec<Stage>) -> Result<Self, ScheduleError> {
        check_stages(&stages)?;
        Self::build(start, stages)
    }

    /// Parses the text form, e.g. `30s:10,2m:50,30s:0` (see [`parse_stages`]), from 0 users.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        Self::new(parse_stages(text)?)
    }

    /// User `i` starts its first iteration no earlier than `i × stagger`.
    pub fn with_stagger(mut self, stagger: Duration) -> Self {
        self.stagger = stagger;
        self
    }

    /// The total duration of the stages.
    pub fn duration(&self) -> Duration {
        self.curve.end()
    }

    fn build(start: u32, stages: Vec<Stage>) -> Result<Self, ScheduleError> {
        let mut legs = Vec::with_capacity(stages.len());
        for (i, s) in stages.iter().enumerate() {
            if s.target.fract() != 0.0 || s.target > f64::from(u32::MAX) {
                return err(format!(
                    "stages: stage {} target must be a whole number of users, got {}",
                    i + 1,
                    s.target
                ));
            }
            legs.push((s.duration, s.target as u32));
        }
        let curve = UserCurve::new(start, legs);
        if curve.max_users() == 0 {
            return err("stages: every target is 0 users, so no user would ever start");
        }
        Ok(Self {
            start,
            stages,
            curve,
            stagger: Duration::ZERO,
        })
    }
}

impl UserSchedule for StagesUsers {
    fn max_users(&self) -> u32 {
        self.curve.max_users()
    }
    fn users_at(&self, t: Duration) -> u32 {
        self.curve.users_at(t)
    }
    fn next_change(&self, t: Duration) -> Option<Duration> {
        self.curve.next_change(t)
    }
    fn first_start(&self, user: u32) -> Duration {
        self.stagger * user
    }
    fn end(&self) -> Option<Duration> {
        Some(self.curve.end())
    }
    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "stages",
            open_loop: false,
            params: vec![
                ("stages", ParamValue::Text(stages_text(&self.stages))),
                ("start", ParamValue::Int(self.start.into())),
                ("stagger", ParamValue::Duration(self.stagger)),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{plan_arrivals, plan_users};
    use crate::user_curve::tests::{chain, check_consistent};

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// The rate at `t` of stages given as `(seconds, target)` from `start`.
    fn rate_at(start: f64, stages: &[(f64, f64)], t: f64) -> f64 {
        let (mut begin, mut from) = (0.0, start);
        for &(len, to) in stages {
            if t < begin + len {
                return from + (to - from) * (t - begin) / len;
            }
            (begin, from) = (begin + len, to);
        }
        0.0
    }

    #[test]
    fn open_stages_per_second_counts_follow_the_steps() {
        // Up to 100/s in 10s, hold 10s, jump to 20/s, hold 5s, down to 0 in 10s.
        let text = "10s:100,10s:100,0s:20,5s:20,10s:0";
        let shape = [
            (10.0, 100.0),
            (10.0, 100.0),
            (0.0, 20.0),
            (5.0, 20.0),
            (10.0, 0.0),
        ];
        let mut s = StagesRate::parse(text).unwrap();
        assert_eq!(s.duration(), S(35));
        let counts = plan_arrivals(&mut s, S(40));
        for (second, &n) in counts.iter().enumerate() {
            let t = second as f64;
            let area = (0..1000)
                .map(|i| rate_at(0.0, &shape, t + (f64::from(i) + 0.5) / 1000.0))
                .sum::<f64>()
                / 1000.0;
            assert!(
                (n as f64 - area).abs() <= 1.0 + 1e-6,
                "second {second}: {n} vs {area}: {counts:?}"
            );
        }
        assert_eq!(&counts[10..20], &[100; 10]);
        assert_eq!(&counts[20..25], &[20; 5]);
        assert_eq!(&counts[35..], &[0; 5]);
        // Area under the whole shape: 500 + 1000 + 100 + 100 = 1700, and then it ends.
        let mut s = StagesRate::parse(text).unwrap();
        assert_eq!(std::iter::from_fn(|| s.next_arrival()).count(), 1700);
    }

    #[test]
    fn open_stages_start_from_the_start_rate() {
        let mut s = StagesRate::from_start(10.0, parse_stages("10s:10").unwrap()).unwrap();
        assert_eq!(
            plan_arrivals(&mut s, S(12)),
            [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 0, 0]
        );
    }

    #[test]
    fn closed_stages_follow_the_steps_exactly() {
        let s = StagesUsers::parse("30s:10,1m:10,30s:0").unwrap();
        assert_eq!((s.max_users(), s.end()), (10, Some(S(120))));
        let steps = chain(&s, S(1000));
        let mut want: Vec<(Duration, u32)> = (0..=10).map(|j| (S(3 * j), j as u32)).collect();
        want.extend((1..=10).map(|j| (S(90 + 3 * j), 10 - j as u32)));
        assert_eq!(steps, want);
        let peaks = plan_users(&s, S(121));
        assert_eq!(peaks[0..7], [0, 0, 0, 1, 1, 1, 2]);
        assert_eq!(peaks[30..90], [10; 60]);
        assert_eq!(peaks[119..], [1, 0]);
    }

    #[test]
    fn closed_stages_are_consistent_everywhere() {
        let cases = [
            "30s:10,2m:50,30s:0",
            "1s:1000,500ms:3,0s:40,2s:40,1m30s:0",
            "7s:3,0s:0,3s:0,0s:5,4s:1",
            "250ms:1,250ms:0,250ms:1",
        ];
        for text in cases {
            let s = StagesUsers::parse(text).unwrap().with_stagger(MS(10));
            check_consistent(&s, s.duration() + S(5), MS(29));
        }
        let s = StagesUsers::from_start(20, parse_stages("10s:0").unwrap()).unwrap();
        check_consistent(&s, S(15), MS(7));
        assert_eq!(s.users_at(Duration::ZERO), 20);
    }

    #[test]
    fn stages_are_validated_with_clear_messages() {
        let cases = [
            (
                StagesRate::new(vec![]).map(|_| ()),
                "stages: no stages given",
            ),
            (StagesRate::parse("").map(|_| ()), "no stages given"),
            (
                StagesRate::parse("30s:10,,1m:5").map(|_| ()),
                "stage 2 is empty",
            ),
            (StagesRate::parse("0s:10").map(|_| ()), "last 0s in total"),
            (
                StagesRate::parse("10s:0,5s:0").map(|_| ()),
                "the rate is 0 throughout",
            ),
            (
                StagesRate::new(vec![Stage {
                    duration: S(1),
                    target: -2.0,
                }])
                .map(|_| ()),
                "stage 1 target must be a non-negative number, got -2",
            ),
            (
                StagesRate::from_start(f64::NAN, parse_stages("10s:5").unwrap()).map(|_| ()),
                "stages start rps",
            ),
            (
                StagesUsers::parse("10s:2.5").map(|_| ()),
                "stage 1 target must be a whole number of users, got 2.5",
            ),
            (
                StagesUsers::parse("10s:0").map(|_| ()),
                "every target is 0 users",
            ),
            (StagesUsers::new(vec![]).map(|_| ()), "no stages given"),
        ];
        for (got, expect) in cases {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        }
    }

    #[test]
    fn stages_patterns_give_the_canonical_text_form() {
        let p = StagesRate::parse("30s:10, 120s:50,30s:0,1.5s:2.5")
            .unwrap()
            .pattern();
        assert_eq!((p.kind, p.open_loop), ("stages", true));
        assert_eq!(
            p.params,
            [
                (
                    "stages",
                    ParamValue::Text("30s:10,2m:50,30s:0,1s500ms:2.5".into())
                ),
                ("start", ParamValue::Float(0.0))
            ]
        );
        let stages = parse_stages("1m30s:5").unwrap();
        let p = StagesUsers::from_start(2, stages)
            .unwrap()
            .with_stagger(MS(1))
            .pattern();
        assert_eq!((p.kind, p.open_loop), ("stages", false));
        assert_eq!(
            p.params,
            [
                ("stages", ParamValue::Text("1m30s:5".into())),
                ("start", ParamValue::Int(2)),
                ("stagger", ParamValue::Duration(MS(1)))
            ]
        );
        // The text form parses back to the same stages.
        let again = StagesRate::parse("30s:10,2m:50,30s:0,1s500ms:2.5").unwrap();
        assert_eq!(
            again.stages,
            parse_stages("30s:10,2m:50,30s:0,1.5s:2.5").unwrap()
        );
    }
}
