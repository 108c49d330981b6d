//! Pure planning for `loadkit plan` / `--dry-run`: what a schedule will do, second by second,
//! without any clock.

use std::time::Duration;

use crate::closed::UserSchedule;
use crate::open::ArrivalSchedule;

/// The number of one-second buckets covering `[0, horizon)`: a partial last second counts.
fn buckets(horizon: Duration) -> usize {
    let whole = horizon.as_secs() + u64::from(horizon.subsec_nanos() > 0);
    usize::try_from(whole).expect("horizon fits in memory")
}

/// The planned arrivals per second: element `s` is the number of arrivals at offsets in
/// `[s, s + 1)` seconds, for every second that starts before `horizon` (arrivals at or after
/// `horizon` are not counted). Reads the schedule up to the first arrival at or after
/// `horizon`; clone it first to keep it. Takes time proportional to the number of arrivals.
///
/// ```
/// use loadkit_schedule::{plan_arrivals, RampRate};
/// use std::time::Duration;
///
/// let mut ramp = RampRate::new(0.0, 10.0, Duration::from_secs(5)).unwrap();
/// assert_eq!(plan_arrivals(&mut ramp, Duration::from_secs(7)), [1, 3, 5, 7, 9, 10, 10]);
/// ```
pub fn plan_arrivals<S: ArrivalSchedule + ?Sized>(schedule: &mut S, horizon: Duration) -> Vec<u64> {
    let mut out = vec![0; buckets(horizon)];
    while let Some(at) = schedule.next_arrival() {
        if at >= horizon {
            break;
        }
        out[at.as_secs() as usize] += 1;
    }
    out
}

/// The planned users per second: element `s` is the most users active at any instant of
/// `[s, s + 1)` seconds (so a change shorter than a second still shows), for every second
/// that starts before `horizon`. Follows [`UserSchedule::next_change`], so it takes time
/// proportional to the number of changes, not to the horizon's resolution.
///
/// ```
/// use loadkit_schedule::{plan_users, RampUsers};
/// use std::time::Duration;
///
/// let ramp = RampUsers::spawn_rate(12, 5.0).unwrap(); // one user every 200ms, the first at 0
/// assert_eq!(plan_users(&ramp, Duration::from_secs(4)), [5, 10, 12, 12]);
/// ```
pub fn plan_users<S: UserSchedule + ?Sized>(schedule: &S, horizon: Duration) -> Vec<u64> {
    let n = buckets(horizon);
    let mut out = Vec::with_capacity(n);
    let mut users = schedule.users_at(Duration::ZERO);
    let mut next = schedule.next_change(Duration::ZERO);
    for second in 0..n {
        let start = Duration::from_secs(second as u64);
        let end = (start + Duration::from_secs(1)).min(horizon);
        // A change exactly at the start of the second belongs to it.
        while let Some(at) = next.filter(|&at| at <= start) {
            users = schedule.users_at(at);
            next = schedule.next_change(at).filter(|&n| n > at);
        }
        let mut peak = users;
        while let Some(at) = next.filter(|&at| at < end) {
            users = schedule.users_at(at);
            peak = peak.max(users);
            // A schedule must move forward; a broken one must not hang the plan.
            next = schedule.next_change(at).filter(|&n| n > at);
        }
        out.push(u64::from(peak));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BurstRate, ConstantRate, FixedInterval, FixedUsers, SpikeUsers};

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn arrivals_are_bucketed_by_second_up_to_the_horizon() {
        let cases: [(Box<dyn ArrivalSchedule>, Duration, &[u64]); 5] = [
            (Box::new(ConstantRate::new(4.0).unwrap()), S(3), &[4, 4, 4]),
            (
                Box::new(ConstantRate::new(4.0).unwrap()),
                MS(2600),
                &[4, 4, 3],
            ),
            (
                Box::new(ConstantRate::new(4.0).unwrap()),
                Duration::ZERO,
                &[],
            ),
            (
                Box::new(BurstRate::new(3, S(2)).unwrap()),
                S(5),
                &[3, 0, 3, 0, 3],
            ),
            (
                Box::new(BurstRate::new(3, MS(500)).unwrap()),
                MS(1500),
                &[6, 3],
            ),
        ];
        for (mut schedule, horizon, expect) in cases {
            assert_eq!(
                plan_arrivals(&mut schedule, horizon),
                expect,
                "{schedule:?}"
            );
        }
    }

    #[test]
    fn an_exhausted_schedule_plans_zeros_after_its_end() {
        let mut stages =
            crate::StagesRate::from_start(2.0, crate::parse_stages("2s:2").unwrap()).unwrap();
        assert_eq!(plan_arrivals(&mut stages, S(4)), [2, 2, 0, 0]);
    }

    #[test]
    fn users_are_the_peak_of_each_second() {
        let cases: [(Box<dyn UserSchedule>, Duration, &[u64]); 4] = [
            (Box::new(FixedUsers::new(7).unwrap()), S(3), &[7, 7, 7]),
            (
                Box::new(FixedInterval::new(2, S(20)).unwrap()),
                MS(1500),
                &[2, 2],
            ),
            // A 300ms spike to 9 inside second 2 shows; the base 1 otherwise.
            (
                Box::new(SpikeUsers::new(1, 9, MS(300), MS(2500)).unwrap()),
                S(6),
                &[1, 1, 9, 1, 1, 9],
            ),
            (
                Box::new(SpikeUsers::new(1, 9, MS(300), MS(2500)).unwrap()),
                Duration::ZERO,
                &[],
            ),
        ];
        for (schedule, horizon, expect) in cases {
            assert_eq!(
                plan_users(schedule.as_ref(), horizon),
                expect,
                "{schedule:?}"
            );
        }
    }
}
