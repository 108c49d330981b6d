//! The engine's own open-loop precision: a no-op client at a high constant rate, printing the
//! schedule lag (sent − intended) percentiles. Run with
//! `cargo run --release -p loadkit-core --example schedule_lag -- 2000 5`.

use std::time::Duration;

use loadkit_core::schedule::ConstantRate;
use loadkit_core::{client_fn, RequestCtx, Runner};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000.0);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let client = client_fn(|_: u64| async { Ok(()) });
    let result = Runner::builder(client, |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(rate).expect("a positive rate"))
        .duration(Duration::from_secs(secs))
        .build()
        .expect("a valid configuration")
        .run()
        .await;
    let lag = &result.stats.schedule_lag;
    let ms = |q: f64| lag.quantile(q).as_secs_f64() * 1e3;
    println!(
        "{} requests at {rate}/s: schedule lag p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        result.stats.counters.started,
        ms(0.5),
        ms(0.99),
        lag.max().as_secs_f64() * 1e3
    );
}
