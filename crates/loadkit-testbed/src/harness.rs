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

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
