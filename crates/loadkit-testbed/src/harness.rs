//! What the protocol crates' integration tests share (feature `harness`): a closed-loop run
//! through loadkit's engine, the grouped errors of a result, durations in milliseconds.

use std::time::Duration;

use loadkit_core::schedule::FixedUsers;
use loadkit_core::{Client, RunResult, Runner, Source};

/// Every request's deadline in [`run`]: long enough for a busy machine, short enough that a
/// hung test ends.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `requests` requests of `client` with `users` closed-loop users, each request made by
/// `source` (a closure of the request context works), every request bounded by
/// [`REQUEST_TIMEOUT`].
///
/// # Panics
///
/// When `users` is zero (a test's mistake).
pub async fn run<C, S>(client: C, source: S, requests: u64, users: u32) -> RunResult
where
    C: Client,
    S: Source<Item = C::Request>,
{
    Runner::builder(client, source)
        .closed_loop(FixedUsers::new(users).expect("at least one user"))
        .requests(requests)
        .timeout(Some(REQUEST_TIMEOUT))
        .build()
        .expect("a valid run")
        .run()
        .await
}

/// The ten largest error groups of `result` as (class, message, count).
pub fn errors(result: &RunResult) -> Vec<(String, String, u64)> {
    result
        .stats
        .errors
        .top(10)
        .into_iter()
        .map(|g| (g.class, g.message, g.count))
        .collect()
}

/// How long [`Transport::lingering`](crate::Transport::lingering) servers in these tests keep
/// each body open after its end marker.
pub const LINGER: Duration = Duration::from_millis(800);

/// Checks a run of sequential requests (one user) against a server lingering [`LINGER`] after
/// each end marker, that took `wall`: every request succeeded, E2E ended at the marker (p50
/// well under the linger), and the user did not wait for the bodies' ends (the whole run took
/// less than two lingers, where waiting would take one per request).
///
/// # Panics
///
/// When any of that is not so (it is a test's assertion).
pub fn assert_linger_is_off_the_clock(result: &RunResult, requests: u64, wall: Duration) {
    let s = &result.stats;
    assert_eq!(s.counters.succeeded, requests, "{:?}", errors(result));
    let e2e = s.e2e.quantile(0.5);
    assert!(e2e < LINGER / 4, "e2e p50 {e2e:?}");
    assert!(wall < LINGER * 2, "the run took {wall:?}");
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
