//! Closed-loop user counts that follow a piecewise-linear target in whole-user steps, in exact
//! integer nanosecond arithmetic, so `users_at` and `next_change` agree to the nanosecond.
//!
//! On a leg going from `a` to `b` users over `D` (starting at `t₀`), with `Δ = |b − a|`:
//! `users(t₀ + τ) = a ± ⌊Δ·τ / D⌋` (in nanoseconds), so change `j` (`j = 1..=Δ`) happens at
//! `τ_j = ⌈j·D / Δ⌉`, the first nanosecond where `⌊Δ·τ / D⌋ ≥ j`. The count is right-continuous
//! (constant on `[τ_j, τ_{j+1})`) both going up and going down. A leg of zero length is a jump at
//! its instant. After the last leg the count holds at its target.

use std::time::Duration;

use crate::num::{from_nanos, nanos};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leg {
    begin: u128,
    len: u128,
    from: u32,
    to: u32,
}

impl Leg {
    fn end(&self) -> u128 {
        self.begin + self.len
    }

    fn delta(&self) -> u128 {
        u128::from(self.from.abs_diff(self.to))
    }

    /// Users at offset `tau` (nanoseconds) into the leg, `tau < len`.
    fn users(&self, tau: u128) -> u32 {
        let steps = (self.delta() * tau / self.len) as u32;
        if self.to >= self.from {
            self.from + steps
        } else {
            self.from - steps
        }
    }

    /// The first instant after `t` (inside the leg, `t < end`) where the count may change: the
    /// next whole-user step, or the leg's end when the leg is flat.
    fn next_step(&self, t: u128) -> u128 {
        let delta = self.delta();
        if delta == 0 {
            return self.end();
        }
        let j = delta * (t - self.begin) / self.len;
        self.begin + ((j + 1) * self.len).div_ceil(delta)
    }
}

/// A user count over time: `start` users at zero, then each `(duration, target)` leg in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserCurve {
    start: u32,
    legs: Vec<Leg>,
}

impl UserCurve {
    pub(crate) fn new(start: u32, legs: impl IntoIterator<Item = (Duration, u32)>) -> Self {
        let mut begin = 0;
        let mut from = start;
        let legs = legs
            .into_iter()
            .map(|(len, to)| {
                let leg = Leg {
                    begin,
                    len: nanos(len),
                    from,
                    to,
                };
                begin = leg.end();
                from = to;
                leg
            })
            .collect();
        Self { start, legs }
    }

    pub(crate) fn max_users(&self) -> u32 {
        self.legs.iter().map(|l| l.to).fold(self.start, u32::max)
    }

    /// When the last leg ends.
    pub(crate) fn end(&self) -> Duration {
        from_nanos(self.legs.last().map_or(0, Leg::end))
    }

    /// The leg holding `t`: the first leg ending after it.
    fn leg_at(&self, t: u128) -> Option<&Leg> {
        self.legs.get(self.legs.partition_point(|l| l.end() <= t))
    }

    fn users_at_nanos(&self, t: u128) -> u32 {
        match self.leg_at(t) {
            Some(leg) => leg.users(t - leg.begin),
            None => self.legs.last().map_or(self.start, |l| l.to),
        }
    }

    pub(crate) fn users_at(&self, t: Duration) -> u32 {
        self.users_at_nanos(nanos(t))
    }

    pub(crate) fn next_change(&self, t: Duration) -> Option<Duration> {
        let t = nanos(t);
        let now = self.users_at_nanos(t);
        let mut probe = t;
        // Each pass moves `probe` to a later step or leg end; a step inside a sloped leg always
        // changes the count, so this ends within (number of legs + 1) passes.
        loop {
            let leg = self.leg_at(probe)?;
            probe = leg.next_step(probe);
            if self.users_at_nanos(probe) != now {
                return Some(from_nanos(probe));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::closed::UserSchedule;

    /// For every sampled `t`: `users_at` is constant on `[t, next_change(t))`, differs at
    /// `next_change(t)`, and does not change between `t` and the horizon when there is none.
    /// Samples are every `step` up to `horizon`, plus each change instant and the nanosecond
    /// before it.
    pub(crate) fn check_consistent(s: &dyn UserSchedule, horizon: Duration, step: Duration) {
        let mut t = Duration::ZERO;
        let mut changes = 0u64;
        while t < horizon {
            let now = s.users_at(t);
            assert!(now <= s.max_users(), "users {now} above max at {t:?}");
            match s.next_change(t) {
                Some(next) => {
                    assert!(next > t, "next_change({t:?}) = {next:?} is not after t");
                    assert_ne!(
                        s.users_at(next),
                        now,
                        "no change at next_change({t:?}) = {next:?}"
                    );
                    let just_before = next - Duration::from_nanos(1);
                    assert_eq!(
                        s.users_at(just_before),
                        now,
                        "changed before {next:?} (from {t:?})"
                    );
                    // Sample inside the interval too.
                    for i in 0..16 {
                        let u = t + (next - t) * i / 16;
                        assert_eq!(
                            s.users_at(u),
                            now,
                            "changed at {u:?} before {next:?} (from {t:?})"
                        );
                    }
                    // Walking the chain of changes from here must agree with the chain from t.
                    assert_eq!(s.next_change(just_before), Some(next));
                    changes += 1;
                }
                None => {
                    for i in 0..64 {
                        let u = t + (horizon * 4 - t) * i / 64;
                        assert_eq!(
                            s.users_at(u),
                            now,
                            "changed at {u:?} after next_change = None"
                        );
                    }
                }
            }
            t += step;
        }
        assert!(changes > 0 || s.next_change(Duration::ZERO).is_none());
    }

    /// The full chain of changes from zero: `(instant, users)`, starting with `(0, users_at(0))`.
    pub(crate) fn chain(s: &dyn UserSchedule, horizon: Duration) -> Vec<(Duration, u32)> {
        let mut out = vec![(Duration::ZERO, s.users_at(Duration::ZERO))];
        let mut t = Duration::ZERO;
        while let Some(next) = s.next_change(t) {
            if next > horizon {
                break;
            }
            out.push((next, s.users_at(next)));
            t = next;
        }
        out
    }

    #[test]
    fn legs_step_by_one_user_at_exact_nanoseconds() {
        let c = UserCurve::new(0, [(Duration::from_secs(3), 3)]);
        assert_eq!(c.users_at(Duration::from_nanos(999_999_999)), 0);
        assert_eq!(c.users_at(Duration::from_secs(1)), 1);
        assert_eq!(c.next_change(Duration::ZERO), Some(Duration::from_secs(1)));
        assert_eq!(
            c.next_change(Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            c.next_change(Duration::from_millis(2500)),
            Some(Duration::from_secs(3))
        );
        assert_eq!(c.next_change(Duration::from_secs(3)), None);
        assert_eq!(c.users_at(Duration::from_secs(1000)), 3);
        // Thirds of a second do not divide evenly: ⌈j·D/Δ⌉ nanoseconds.
        let c = UserCurve::new(0, [(Duration::from_secs(1), 3)]);
        assert_eq!(
            c.next_change(Duration::ZERO),
            Some(Duration::from_nanos(333_333_334))
        );
        assert_eq!(c.users_at(Duration::from_nanos(333_333_333)), 0);
        assert_eq!(c.users_at(Duration::from_nanos(333_333_334)), 1);
    }

    #[test]
    fn going_down_is_right_continuous_too() {
        let c = UserCurve::new(10, [(Duration::from_secs(10), 0)]);
        assert_eq!(c.users_at(Duration::ZERO), 10);
        assert_eq!(c.users_at(Duration::from_nanos(999_999_999)), 10);
        assert_eq!(c.users_at(Duration::from_secs(1)), 9);
        assert_eq!(c.next_change(Duration::ZERO), Some(Duration::from_secs(1)));
        assert_eq!(c.users_at(Duration::from_secs(10)), 0);
        assert_eq!(
            c.next_change(Duration::from_millis(9500)),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn flat_legs_and_jumps_are_skipped_or_taken_exactly() {
        let s = Duration::from_secs;
        // 0 → 2 over 2s, hold 2 for 3s, jump to 7, hold 7 for 1s, then 7 → 5 over 2s.
        let c = UserCurve::new(0, [(s(2), 2), (s(3), 2), (s(0), 7), (s(1), 7), (s(2), 5)]);
        assert_eq!(c.max_users(), 7);
        assert_eq!(c.end(), s(8));
        let mut t = Duration::ZERO;
        let mut got = vec![];
        while let Some(next) = c.next_change(t) {
            got.push((next, c.users_at(next)));
            t = next;
        }
        assert_eq!(got, [(s(1), 1), (s(2), 2), (s(5), 7), (s(7), 6), (s(8), 5)]);
    }
}
