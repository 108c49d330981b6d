//! `spike`: a base load that jumps to a spike level for `spike_duration` every `every`, in open
//! loop (rates) and closed loop (users).
//!
//! Timeline, for `k = 1, 2, 3, …`: the spike level holds on `[k·every, k·every + spike_duration)`
//! and the base level everywhere else, so the run starts with a full `every` of base load.

use std::time::Duration;

use crate::closed::UserSchedule;
use crate::curve::{CurveArrivals, Piece, RateCurve};
use crate::num::{from_nanos, nanos};
use crate::open::ArrivalSchedule;
use crate::parse::format_duration;
use crate::pattern::{
    err, non_negative_rate, positive_duration, ParamValue, Pattern, ScheduleError,
};

/// Checks the timing shared by both forms.
fn check_timing(spike_duration: Duration, every: Duration) -> Result<(), ScheduleError> {
    positive_duration("spike duration", spike_duration)?;
    positive_duration("spike every", every)?;
    if spike_duration >= every {
        return err(format!(
            "spike duration ({}) must be shorter than spike every ({})",
            format_duration(spike_duration),
            format_duration(every)
        ));
    }
    Ok(())
}

/// The spike timeline as rate pieces: base on `[0, every)`, then per period `k ≥ 1` a spike
/// piece and a base piece.
#[derive(Debug, Clone)]
struct SpikeCurve {
    base: f64,
    spike: f64,
    every: u128,
    duration: u128,
}

impl RateCurve for SpikeCurve {
    fn piece(&mut self, index: u64) -> Option<Piece> {
        let s = |ns: u128| ns as f64 / 1e9;
        let period = u128::from(index).div_ceil(2);
        let (begin, end, rate) = if index == 0 {
            (0, self.every, self.base)
        } else if index % 2 == 1 {
            let begin = period * self.every;
            (begin, begin + self.duration, self.spike)
        } else {
            (
                period * self.every + self.duration,
                (period + 1) * self.every,
                self.base,
            )
        };
        Some(Piece {
            start: s(begin),
            len: s(end) - s(begin),
            from: rate,
            to: rate,
        })
    }
}

/// `spike` (open loop): `rps` requests per second, jumping to `spike_rps` on
/// `[k·every, k·every + spike_duration)` for `k = 1, 2, …`. Arrivals are placed by integrating
/// the rate exactly (arrival `k` where `∫ rate` first exceeds `k`), so a spike of `spike_rps`
/// for `spike_duration` holds `spike_rps × spike_duration` arrivals (± 1).
#[derive(Debug, Clone)]
pub struct SpikeRate {
    base: f64,
    spike: f64,
    duration: Duration,
    every: Duration,
    arrivals: CurveArrivals<SpikeCurve>,
}

impl SpikeRate {
    /// A base of `rps` (zero or more), spikes of `spike_rps` (above `rps`) lasting
    /// `spike_duration` (longer than zero, shorter than `every`) every `every`.
    pub fn new(
        rps: f64,
        spike_rps: f64,
        spike_duration: Duration,
        every: Duration,
    ) -> Result<Self, ScheduleError> {
        non_negative_rate("spike base rps", rps)?;
        non_negative_rate("spike rps", spike_rps)?;
        if spike_rps <= rps {
            return err(format!(
                "spike rps ({spike_rps}) must be above the base rps ({rps})"
            ));
        }
        check_timing(spike_duration, every)?;
        let curve = SpikeCurve {
            base: rps,
            spike: spike_rps,
            every: nanos(every),
            duration: nanos(spike_duration),
        };
        Ok(Self {
            base: rps,
            spike: spike_rps,
            duration: spike_duration,
            every,
            arrivals: CurveArrivals::new(curve),
        })
    }
}

impl ArrivalSchedule for SpikeRate {
    fn next_arrival(&mut self) -> Option<Duration> {
        self.arrivals.next()
    }

    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "spike",
            open_loop: true,
            params: vec![
                ("rps", ParamValue::Float(self.base)),
                ("spike_rps", ParamValue::Float(self.spike)),
                ("spike_duration", ParamValue::Duration(self.duration)),
                ("spike_every", ParamValue::Duration(self.every)),
            ],
        }
    }
}

/// `spike` (closed loop): `users` users, jumping to `spike_users` on
/// `[k·every, k·every + spike_duration)` for `k = 1, 2, …`; user `i` first starts no earlier
/// than `i × stagger`.
#[derive(Debug, Clone)]
pub struct SpikeUsers {
    base: u32,
    spike: u32,
    duration: Duration,
    every: Duration,
    stagger: Duration,
}

impl SpikeUsers {
    /// A base of `users` (zero or more), spikes of `spike_users` (more than `users`) lasting
    /// `spike_duration` (longer than zero, shorter than `every`) every `every`.
    pub fn new(
        users: u32,
        spike_users: u32,
        spike_duration: Duration,
        every: Duration,
    ) -> Result<Self, ScheduleError> {
        if spike_users <= users {
            return err(format!(
                "spike users ({spike_users}) must be above the base users ({users})"
            ));
        }
        check_timing(spike_duration, every)?;
        Ok(Self {
            base: users,
            spike: spike_users,
            duration: spike_duration,
            every,
            stagger: Duration::ZERO,
        })
    }

    /// User `i` starts its first iteration no earlier than `i × stagger`.
    pub fn with_stagger(mut self, stagger: Duration) -> Self {
        self.stagger = stagger;
        self
    }

    /// The period index and the offset into it.
    fn phase(&self, t: Duration) -> (u128, u128) {
        let (t, every) = (nanos(t), nanos(self.every));
        (t / every, t % every)
    }
}

impl UserSchedule for SpikeUsers {
    fn max_users(&self) -> u32 {
        self.spike
    }
    fn users_at(&self, t: Duration) -> u32 {
        let (period, offset) = self.phase(t);
        if period >= 1 && offset < nanos(self.duration) {
            self.spike
        } else {
            self.base
        }
    }
    fn next_change(&self, t: Duration) -> Option<Duration> {
        let (period, offset) = self.phase(t);
        let every = nanos(self.every);
        if period >= 1 && offset < nanos(self.duration) {
            Some(from_nanos(period * every + nanos(self.duration)))
        } else {
            Some(from_nanos((period + 1) * every))
        }
    }
    fn first_start(&self, user: u32) -> Duration {
        self.stagger * user
    }
    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "spike",
            open_loop: false,
            params: vec![
                ("users", ParamValue::Int(self.base.into())),
                ("spike_users", ParamValue::Int(self.spike.into())),
                ("spike_duration", ParamValue::Duration(self.duration)),
                ("spike_every", ParamValue::Duration(self.every)),
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

    #[test]
    fn open_spike_is_reached_in_the_right_second_and_back_after_its_duration() {
        // 10/s, 100/s for 3s every 10s.
        let counts = plan_arrivals(
            &mut SpikeRate::new(10.0, 100.0, S(3), S(10)).unwrap(),
            S(40),
        );
        for (second, &n) in counts.iter().enumerate() {
            let spiking = second >= 10 && second % 10 < 3;
            assert_eq!(
                n,
                if spiking { 100 } else { 10 },
                "second {second}: {counts:?}"
            );
        }
    }

    #[test]
    fn open_spike_with_an_idle_base_and_sub_second_timing() {
        // Nothing, then 40/s for 250ms every 1.5s: 10 arrivals per spike, 25ms apart.
        let mut s = SpikeRate::new(0.0, 40.0, MS(250), MS(1500)).unwrap();
        let got: Vec<Duration> = (0..20).map(|_| s.next_arrival().unwrap()).collect();
        let want: Vec<Duration> = (0..20)
            .map(|i| MS(1500) * (1 + i / 10) + MS(25) * (i % 10))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn closed_spike_jumps_and_comes_back_exactly() {
        let s = SpikeUsers::new(5, 50, S(3), S(10)).unwrap();
        let got = chain(&s, S(35));
        assert_eq!(
            got,
            [
                (S(0), 5),
                (S(10), 50),
                (S(13), 5),
                (S(20), 50),
                (S(23), 5),
                (S(30), 50),
                (S(33), 5)
            ]
        );
        check_consistent(&s, S(45), MS(111));
        let idle = SpikeUsers::new(0, 3, MS(700), MS(1100))
            .unwrap()
            .with_stagger(MS(10));
        check_consistent(&idle, S(12), MS(13));
        let peaks = plan_users(&s, S(15));
        assert_eq!(peaks, [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 50, 50, 50, 5, 5]);
    }

    #[test]
    fn spike_parameters_are_validated() {
        let cases = [
            (
                SpikeRate::new(10.0, 5.0, S(1), S(10)).map(|_| ()),
                "spike rps (5) must be above the base rps (10)",
            ),
            (
                SpikeRate::new(10.0, 10.0, S(1), S(10)).map(|_| ()),
                "must be above",
            ),
            (
                SpikeRate::new(-1.0, 10.0, S(1), S(10)).map(|_| ()),
                "spike base rps must be a non-negative",
            ),
            (
                SpikeRate::new(1.0, f64::NAN, S(1), S(10)).map(|_| ()),
                "spike rps must be a non-negative",
            ),
            (
                SpikeRate::new(1.0, 10.0, S(0), S(10)).map(|_| ()),
                "spike duration must be longer than zero",
            ),
            (
                SpikeRate::new(1.0, 10.0, S(1), S(0)).map(|_| ()),
                "spike every must be longer than zero",
            ),
            (
                SpikeRate::new(1.0, 10.0, S(10), S(10)).map(|_| ()),
                "spike duration (10s) must be shorter than spike every (10s)",
            ),
            (
                SpikeUsers::new(10, 5, S(1), S(10)).map(|_| ()),
                "spike users (5) must be above the base users (10)",
            ),
            (
                SpikeUsers::new(1, 5, S(11), S(10)).map(|_| ()),
                "must be shorter",
            ),
        ];
        for (got, expect) in cases {
            let e = got.unwrap_err().to_string();
            assert!(e.contains(expect), "{e}");
        }
    }

    #[test]
    fn spike_patterns_describe_every_parameter() {
        let p = SpikeRate::new(1.0, 9.0, S(2), S(30)).unwrap().pattern();
        assert_eq!((p.kind, p.open_loop), ("spike", true));
        let names: Vec<&str> = p.params.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["rps", "spike_rps", "spike_duration", "spike_every"]);
        let p = SpikeUsers::new(1, 9, S(2), S(30))
            .unwrap()
            .with_stagger(MS(3))
            .pattern();
        assert_eq!((p.kind, p.open_loop), ("spike", false));
        assert_eq!(
            p.params,
            [
                ("users", ParamValue::Int(1)),
                ("spike_users", ParamValue::Int(9)),
                ("spike_duration", ParamValue::Duration(S(2))),
                ("spike_every", ParamValue::Duration(S(30))),
                ("stagger", ParamValue::Duration(MS(3)))
            ]
        );
    }
}
