//! Closed-loop schedules: how many users run over time, and how each paces its iterations.

use std::fmt;
use std::time::Duration;

use crate::pattern::{ParamValue, Pattern, ScheduleError};

/// How a user spaces its iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// Start the next iteration as soon as the previous one ends.
    Back2Back,
    /// Start an iteration every `interval` whatever the response time: wait = interval − time
    /// taken, never negative. A late iteration starts at once and counts as an overrun.
    Interval(Duration),
}

/// When a user's next iteration should start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextStart {
    /// The intended start, as an offset from the run start.
    pub at: Duration,
    /// `true` when the previous iteration ran past the intended start (fixed-interval overrun).
    pub overrun: bool,
}

impl Pacing {
    /// The next iteration's start, given when the previous one was intended to start and when
    /// it ended (both offsets from the run start).
    ///
    /// For [`Pacing::Interval`], the intended start is `previous + interval` when the previous
    /// iteration ended in time; when it overran, the next starts at once (`ended`) and that
    /// moment becomes the new reference, so one slow response does not cause a catch-up burst.
    pub fn next_start(self, previous: Duration, ended: Duration) -> NextStart {
        match self {
            Pacing::Back2Back => NextStart {
                at: ended,
                overrun: false,
            },
            Pacing::Interval(interval) => {
                let slot = previous + interval;
                if ended <= slot {
                    NextStart {
                        at: slot,
                        overrun: false,
                    }
                } else {
                    NextStart {
                        at: ended,
                        overrun: true,
                    }
                }
            }
        }
    }
}

/// A closed-loop schedule: a user population over time.
///
/// The engine runs up to [`UserSchedule::max_users`] user tasks; user `i` (counting from zero) is
/// active while `i < users_at(t)`. A user that becomes inactive finishes its current iteration
/// first.
pub trait UserSchedule: Send + Sync + fmt::Debug {
    /// The most users that are ever active at once.
    fn max_users(&self) -> u32;

    /// The number of users that should be active at offset `t` from the run start.
    fn users_at(&self, t: Duration) -> u32;

    /// The first offset after `t` at which [`UserSchedule::users_at`] changes, or `None` if it
    /// never changes again.
    fn next_change(&self, t: Duration) -> Option<Duration>;

    /// The earliest offset at which user `user` may start its first iteration (stagger).
    fn first_start(&self, user: u32) -> Duration {
        let _ = user;
        Duration::ZERO
    }

    /// How users space their iterations.
    fn pacing(&self) -> Pacing {
        Pacing::Back2Back
    }

    /// The offset at which the schedule is over, so the run may complete without any other stop
    /// condition (`stages` ends after its last step), or `None` for schedules that go on until
    /// the run's own stop condition (duration, request count, ...). The count after `end` holds
    /// at [`UserSchedule::users_at`]`(end)`.
    fn end(&self) -> Option<Duration> {
        None
    }

    /// The pattern's kind and parameters, for the report.
    fn pattern(&self) -> Pattern;
}

impl UserSchedule for Box<dyn UserSchedule> {
    fn max_users(&self) -> u32 {
        (**self).max_users()
    }
    fn users_at(&self, t: Duration) -> u32 {
        (**self).users_at(t)
    }
    fn next_change(&self, t: Duration) -> Option<Duration> {
        (**self).next_change(t)
    }
    fn first_start(&self, user: u32) -> Duration {
        (**self).first_start(user)
    }
    fn pacing(&self) -> Pacing {
        (**self).pacing()
    }
    fn end(&self) -> Option<Duration> {
        (**self).end()
    }
    fn pattern(&self) -> Pattern {
        (**self).pattern()
    }
}

/// `constant` (closed loop): a fixed number of users, each looping back to back; user `i` starts
/// at `i × stagger`.
#[derive(Debug, Clone)]
pub struct FixedUsers {
    users: u32,
    stagger: Duration,
}

impl FixedUsers {
    /// `users` concurrent users (at least one).
    pub fn new(users: u32) -> Result<Self, ScheduleError> {
        if users == 0 {
            return Err(ScheduleError("users must be at least 1".into()));
        }
        Ok(Self {
            users,
            stagger: Duration::ZERO,
        })
    }

    /// User `i` starts at `i × stagger`.
    pub fn with_stagger(mut self, stagger: Duration) -> Self {
        self.stagger = stagger;
        self
    }
}

impl UserSchedule for FixedUsers {
    fn max_users(&self) -> u32 {
        self.users
    }
    fn users_at(&self, _t: Duration) -> u32 {
        self.users
    }
    fn next_change(&self, _t: Duration) -> Option<Duration> {
        None
    }
    fn first_start(&self, user: u32) -> Duration {
        self.stagger * user
    }
    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "constant",
            open_loop: false,
            params: vec![
                ("users", ParamValue::Int(self.users.into())),
                ("stagger", ParamValue::Duration(self.stagger)),
            ],
        }
    }
}

/// `fixed-interval`: `users` users, each starting one iteration every `interval` whatever the
/// response time, user `i` first at `i × stagger`. The request count does not depend on how fast
/// the server answers (as long as it answers within the interval), so two versions compare fairly.
#[derive(Debug, Clone)]
pub struct FixedInterval {
    users: u32,
    interval: Duration,
    stagger: Duration,
}

impl FixedInterval {
    /// `users` users (at least one), one iteration each per `interval` (positive).
    pub fn new(users: u32, interval: Duration) -> Result<Self, ScheduleError> {
        if users == 0 {
            return Err(ScheduleError("users must be at least 1".into()));
        }
        if interval.is_zero() {
            return Err(ScheduleError("interval must be positive".into()));
        }
        Ok(Self {
            users,
            interval,
            stagger: Duration::ZERO,
        })
    }

    /// User `i` starts at `i × stagger`.
    pub fn with_stagger(mut self, stagger: Duration) -> Self {
        self.stagger = stagger;
        self
    }
}

impl UserSchedule for FixedInterval {
    fn max_users(&self) -> u32 {
        self.users
    }
    fn users_at(&self, _t: Duration) -> u32 {
        self.users
    }
    fn next_change(&self, _t: Duration) -> Option<Duration> {
        None
    }
    fn first_start(&self, user: u32) -> Duration {
        self.stagger * user
    }
    fn pacing(&self) -> Pacing {
        Pacing::Interval(self.interval)
    }
    fn pattern(&self) -> Pattern {
        Pattern {
            kind: "fixed-interval",
            open_loop: false,
            params: vec![
                ("users", ParamValue::Int(self.users.into())),
                ("interval", ParamValue::Duration(self.interval)),
                ("stagger", ParamValue::Duration(self.stagger)),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn interval_pacing_waits_out_the_interval() {
        let p = Pacing::Interval(S(20));
        assert_eq!(
            p.next_start(S(0), S(3)),
            NextStart {
                at: S(20),
                overrun: false
            }
        );
        assert_eq!(
            p.next_start(S(20), S(40)),
            NextStart {
                at: S(40),
                overrun: false
            }
        );
    }

    #[test]
    fn interval_pacing_starts_late_iterations_at_once_and_flags_them() {
        let p = Pacing::Interval(S(20));
        assert_eq!(
            p.next_start(S(0), S(25)),
            NextStart {
                at: S(25),
                overrun: true
            }
        );
    }

    #[test]
    fn back_to_back_starts_when_the_previous_ends() {
        assert_eq!(Pacing::Back2Back.next_start(S(1), S(2)).at, S(2));
    }

    #[test]
    fn stagger_spaces_first_starts() {
        let s = FixedInterval::new(10, S(20))
            .unwrap()
            .with_stagger(Duration::from_millis(100));
        assert_eq!(s.first_start(0), Duration::ZERO);
        assert_eq!(s.first_start(7), Duration::from_millis(700));
        assert!(FixedUsers::new(0).is_err());
        assert!(FixedInterval::new(1, Duration::ZERO).is_err());
    }
}
