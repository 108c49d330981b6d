//! Load-test an ordinary async Rust function with nothing but `loadkit-core`, then check a
//! percentile: the pattern a service's own integration test would use.
//!
//! Run it with `cargo run -p loadkit-core --example load_test_fn`.

use std::time::Duration;

use loadkit_core::schedule::ConstantRate;
use loadkit_core::{client_fn, RequestCtx, RequestError, Runner};

/// The function under test: a fake lookup that takes 2 ms, and 20 ms for every 10th key.
async fn lookup(key: u64) -> Result<(), RequestError> {
    let cost = if key % 10 == 9 { 20 } else { 2 };
    tokio::time::sleep(Duration::from_millis(cost)).await;
    Ok(())
}

#[tokio::main]
async fn main() {
    let result = Runner::builder(client_fn(lookup), |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(200.0).expect("a positive rate"))
        .duration(Duration::from_secs(2))
        .build()
        .expect("a valid configuration")
        .run()
        .await;
    let e2e = &result.stats.e2e;
    let (p50, p99) = (e2e.quantile(0.50), e2e.quantile(0.99));
    println!(
        "{} requests, {} failed, p50 {:.1} ms, p99 {:.1} ms",
        result.stats.counters.started,
        result.stats.counters.failed,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
    );
    assert_eq!(result.stats.counters.failed, 0);
    assert!(
        p50 >= Duration::from_millis(2) && p50 < Duration::from_millis(15),
        "p50 {p50:?}"
    );
    assert!(
        p99 >= Duration::from_millis(20),
        "p99 {p99:?} must see the slow keys"
    );
}
