//! `ramp`: the rate (open loop) or the user count (closed loop) goes linearly from `from` to
//! `to` over `over`, then holds at `to`; plus the closed-loop spawn-rate form.

use std::time::Duration;

use crate::closed::UserSchedule;
use crate::curve::{CurveArrivals, Piece, Pieces};
use crate::num::{from_nanos, secs};
use crate::open::ArrivalSchedule;
use crate::pattern::{
    err, non_negative_rate, positive_duration, ParamValue, Pattern, ScheduleError,
};
use crate::user_curve::UserCurve;

/// `ramp` (open loop): the rate goes linearly from `from` to `to` requests per second over
/// `over`, then holds at `to` (forever, or until a rate of zero ends the schedule).
///
/// Arrivals are placed by integrating the rate exactly: with
/// `Λ(t) = from·t + (to − from)·t² / (2·over)` for `t ≤ over` (and `to` per second after),
/// arrival `k` (`k = 0, 1, …`) is at the first `t` where `Λ(t) > k`.
#[derive(Debug, Clone)]
pub struct RampRate {
    from: f64,
    to: f64,
    over: Duration,
    arrivals: CurveArrivals<Pieces>,
}

impl RampRate {
    /// From `from` to `to` requests per second (non-negative, not both zero) over `over`
    /// (longer than zero).
    pub fn new(from: f64, to: f64, over: Duration) -> Result<Self, ScheduleError> {
        non_negative_rate("ramp from", from)?;
        non_negative_rate("ramp to", to)?;
        positive_duration("ramp over", over)?;
        if from == 0.0 && to == 0.0 {
            return err("ramp from and to are both 0, so no request would ever start");
        }
        let len = secs(over);
        let pieces = vec![
            Piece {
                start: 0.0,
                len,
                from,
                to,
            },
            Piece {
                start: len,
                len: f64::INFINITY,
                from: to,
                to,
            },
        ];
        Ok(Self {
            from,
            to,
            over,
            arrivals: CurveArrivals::new(Pieces(pieces)),
        })
    }
}

impl ArrivalSchedule for RampRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        self.arrivals.next()
    }

    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "ramp",
            open_loop: true,
            params: vec![
                ("from", ParamValue::Float(self.from)),
                ("to", ParamValue::Float(self.to)),
                ("over", ParamValue::Duration(self.over)),
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum RampForm {
    Linear { from: u32, to: u32, over: Duration },
    Spawn { users: u32, spawn_rate: f64 },
}

/// `ramp` (closed loop): the user count goes linearly from `from` to `to` over `over` in whole
/// users, then holds at `to`; or, in the spawn-rate form, users start one by one at a fixed rate
/// until there are `users` of them.
///
/// Linear form: `users(t) = from ± ⌊|to − from|·t / over⌋` for `t < over` (integer
/// nanoseconds), so the `j`-th change is exactly at `⌈j·over / |to − from|⌉`.
/// Spawn-rate form: user `j` (from 0) becomes active at `j / spawn_rate` seconds, the first at
/// once; it is the linear form from 1 to `users` over `(users − 1) / spawn_rate`.
/// With a stagger, user `i` also waits until `i × stagger` for its first iteration.
#[derive(Debug, Clone)]
pub struct RampUsers {
    form: RampForm,
    curve: UserCurve,
    stagger: Duration,
}

impl RampUsers {
    /// From `from` to `to` users (not both zero) over `over` (longer than zero).
    pub fn new(from: u32, to: u32, over: Duration) -> Result<Self, ScheduleError> {
        positive_duration("ramp over", over)?;
        if from == 0 && to == 0 {
            return err("ramp from and to are both 0 users, so no user would ever start");
        }
        let curve = UserCurve::new(from, [(over, to)]);
        Ok(Self {
            form: RampForm::Linear { from, to, over },
            curve,
            stagger: Duration::ZERO,
        })
    }

    /// `users` users (at least one), started `spawn_rate` per second (positive): the first at
    /// once, user `j` at `j / spawn_rate` seconds.
    pub fn spawn_rate(users: u32, spawn_rate: f64) -> Result<Self, ScheduleError> {
        if users == 0 {
            return err("ramp users must be at least 1");
        }
        if !(spawn_rate.is_finite() && spawn_rate > 0.0) {
            return err(format!(
                "ramp spawn rate must be a positive number of users per second, got {spawn_rate}"
            ));
        }
        let over = from_nanos((f64::from(users - 1) * 1e9 / spawn_rate).round() as u128);
        let curve = UserCurve::new(1, [(over, users)]);
        Ok(Self {
            form: RampForm::Spawn { users, spawn_rate },
            curve,
            stagger: Duration::ZERO,
        })
    }

    /// User `i` starts its first iteration no earlier than `i × stagger`.
    pub fn with_stagger(mut self, stagger: Duration) -> Self {
        self.stagger = stagger;
        self
    }
}

impl UserSchedule for RampUsers {
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
    fn pattern(&self) -> Pattern {
        let mut params = match self.form {
            RampForm::Linear { from, to, over } => vec![
                ("from", ParamValue::Int(from.into())),
                ("to", ParamValue::Int(to.into())),
                ("over", ParamValue::Duration(over)),
            ],
            RampForm::Spawn { users, spawn_rate } => vec![
                ("users", ParamValue::Int(users.into())),
                ("spawn_rate", ParamValue::Float(spawn_rate)),
            ],
        };
        params.push(("stagger", ParamValue::Duration(self.stagger)));
        Pattern {
            kind: "ramp",
            open_loop: false,
            params,
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

    /// Per-second counts of a ramp from `from` to `to` over `over` seconds, checked against the
    /// exact area of each second (the linear slope): within 5% (and never more than one arrival
    /// off), then `to` per second once the ramp is over.
    fn check_ramp(from: f64, to: f64, over: u64) {
        let counts = plan_arrivals(&mut RampRate::new(from, to, S(over)).unwrap(), S(over + 10));
        for (s, &n) in counts.iter().enumerate() {
            let s = s as f64;
            let rate = |t: f64| {
                if t < over as f64 {
                    from + (to - from) * t / over as f64
                } else {
                    to
                }
            };
            let area = (rate(s) + rate(s + 1.0)) / 2.0;
            let off = (n as f64 - area).abs();
            assert!(
                off <= 1.0 + 1e-9,
                "{from}→{to}/{over}s: second {s}: {n} vs {area}"
            );
            if area >= 20.0 {
                assert!(
                    off <= 0.05 * area,
                    "{from}→{to}/{over}s: second {s}: {n} vs {area}"
                );
            }
        }
        // Hold: exactly `to` per second once the ramp is over, for a whole rate.
        if to.fract() == 0.0 {
            assert!(
                counts[over as usize + 1..].iter().all(|&n| n as f64 == to),
                "{counts:?}"
            );
        }
        // The total is exact: ⌈Λ(T)⌉ arrivals before T.
        let total: u64 = counts.iter().sum();
        let lambda = (from + to) / 2.0 * over as f64 + to * 10.0;
        assert!(
            (total as f64 - lambda.ceil()).abs() <= 1.0,
            "{total} vs {lambda}"
        );
    }

    #[test]
    fn open_ramps_follow_the_linear_slope_then_hold() {
        for (from, to, over) in [
            (10.0, 110.0, 100),
            (0.0, 100.0, 10),
            (0.0, 1.0, 60),
            (200.0, 20.0, 30),
            (5.0, 5.5, 7),
        ] {
            check_ramp(from, to, over);
        }
    }

    #[test]
    fn open_ramp_from_zero_places_arrival_k_at_the_root_of_the_integral() {
        // 0 → 10/s over 10s: Λ(t) = t²/2, so arrival k is at √(2k) seconds.
        let mut s = RampRate::new(0.0, 10.0, S(10)).unwrap();
        for k in 0..50u32 {
            let want = (2.0 * f64::from(k)).sqrt();
            let got = s.next_arrival().unwrap().as_secs_f64();
            assert!((got - want).abs() < 1e-9, "arrival {k}: {got} vs {want}");
        }
        // Then 10 per second, every 100ms, from t = 10s where Λ = 50.
        assert_eq!(s.next_arrival(), Some(S(10)));
        assert_eq!(s.next_arrival(), Some(MS(10_100)));
    }

    #[test]
    fn open_ramp_down_to_zero_ends() {
        let mut s = RampRate::new(4.0, 0.0, S(10)).unwrap();
        assert_eq!(std::iter::from_fn(|| s.next_arrival()).count(), 20);
    }

    #[test]
    fn ramp_parameters_are_validated() {
        let cases = [
            (
                RampRate::new(1.0, 5.0, Duration::ZERO).map(|_| ()),
                "ramp over must be longer than zero",
            ),
            (
                RampRate::new(-1.0, 5.0, S(1)).map(|_| ()),
                "ramp from must be a non-negative",
            ),
            (
                RampRate::new(1.0, f64::NAN, S(1)).map(|_| ()),
                "ramp to must be a non-negative",
            ),
            (RampRate::new(0.0, 0.0, S(1)).map(|_| ()), "both 0"),
            (
                RampUsers::new(0, 5, Duration::ZERO).map(|_| ()),
                "ramp over must be longer than zero",
            ),
            (RampUsers::new(0, 0, S(5)).map(|_| ()), "both 0 users"),
            (
                RampUsers::spawn_rate(0, 5.0).map(|_| ()),
                "ramp users must be at least 1",
            ),
            (
                RampUsers::spawn_rate(5, 0.0).map(|_| ()),
                "spawn rate must be a positive",
            ),
            (
                RampUsers::spawn_rate(5, -1.0).map(|_| ()),
                "spawn rate must be a positive",
            ),
        ];
        for (got, expect) in cases {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        }
    }

    #[test]
    fn closed_ramps_change_exactly_when_they_say() {
        let schedules = [
            RampUsers::new(0, 10, S(10)).unwrap(),
            RampUsers::new(10, 0, S(10)).unwrap(),
            RampUsers::new(3, 1000, S(7)).unwrap(),
            RampUsers::new(50, 7, MS(1300)).unwrap(),
            RampUsers::spawn_rate(500, 5.0).unwrap(),
            RampUsers::spawn_rate(20, 3.0).unwrap(),
            RampUsers::spawn_rate(1, 3.0).unwrap(),
        ];
        for s in &schedules {
            check_consistent(s, S(120), MS(37));
        }
    }

    #[test]
    fn closed_ramp_up_and_down_step_one_user_at_a_time() {
        let up = chain(&RampUsers::new(0, 4, S(2)).unwrap(), S(100));
        assert_eq!(
            up,
            [(S(0), 0), (MS(500), 1), (S(1), 2), (MS(1500), 3), (S(2), 4)]
        );
        let down = chain(&RampUsers::new(4, 2, S(2)).unwrap(), S(100));
        assert_eq!(down, [(S(0), 4), (S(1), 3), (S(2), 2)]);
        assert_eq!(
            plan_users(&RampUsers::new(0, 10, S(10)).unwrap(), S(12)),
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10]
        );
    }

    #[test]
    fn spawn_rate_starts_the_first_user_at_once_then_one_every_gap() {
        let s = RampUsers::spawn_rate(500, 5.0).unwrap();
        assert_eq!(s.max_users(), 500);
        let steps = chain(&s, S(1000));
        assert_eq!(steps.len(), 500);
        for (j, (at, users)) in steps.iter().enumerate() {
            assert_eq!((*at, *users), (MS(200) * j as u32, j as u32 + 1));
        }
        assert_eq!(s.next_change(MS(99_800)), None);
        assert_eq!(s.users_at(S(10_000)), 500);
    }

    #[test]
    fn stagger_delays_first_starts() {
        let s = RampUsers::new(0, 10, S(10)).unwrap().with_stagger(MS(250));
        assert_eq!(s.first_start(0), Duration::ZERO);
        assert_eq!(s.first_start(4), S(1));
    }

    #[test]
    fn ramp_patterns_describe_every_parameter() {
        let p = RampRate::new(1.0, 9.0, S(60)).unwrap().pattern();
        assert_eq!((p.kind, p.open_loop), ("ramp", true));
        let names: Vec<&str> = p.params.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["from", "to", "over"]);
        let p = RampUsers::new(2, 9, S(60))
            .unwrap()
            .with_stagger(MS(5))
            .pattern();
        assert_eq!((p.kind, p.open_loop), ("ramp", false));
        assert_eq!(
            p.params,
            [
                ("from", ParamValue::Int(2)),
                ("to", ParamValue::Int(9)),
                ("over", ParamValue::Duration(S(60))),
                ("stagger", ParamValue::Duration(MS(5)))
            ]
        );
        let p = RampUsers::spawn_rate(500, 5.0).unwrap().pattern();
        assert_eq!(
            p.params,
            [
                ("users", ParamValue::Int(500)),
                ("spawn_rate", ParamValue::Float(5.0)),
                ("stagger", ParamValue::Duration(Duration::ZERO))
            ]
        );
    }
}
