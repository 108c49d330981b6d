//! Client memory per concurrent slow stream and inter-token timing error, against a server
//! that streams one token per `itl` (default: 1 token per second).
//!
//! Start a server in another process (`loadkit serve-sim --itl 1s --ttft 1s --tokens 5`) and
//! pass its URL, or pass none to run the simulated server in this process (its memory is then
//! counted too). Run with
//! `cargo run --release -p loadkit-openai --example slow_streams -- [streams] [url]`.
//! Linux only (reads `/proc/self/status`).

use std::time::Duration;

use loadkit_core::schedule::FixedUsers;
use loadkit_core::{RequestCtx, Runner};
use loadkit_openai::{OpenAiClient, OpenAiConfig, OpenAiRequest};
use loadkit_testbed::openai::{self, SimConfig};

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let streams: u32 = args
        .next()
        .map_or(2_000, |a| a.parse().expect("a stream count"));
    let url = args.next();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let _server;
        let url = match url {
            Some(url) => url,
            None => {
                let sim = SimConfig {
                    ttft: Duration::from_secs(1),
                    itl: Duration::from_secs(1),
                    output_tokens: 5,
                    ..SimConfig::default()
                };
                let server = openai::serve(sim).await.unwrap();
                let url = server.base_url();
                _server = server;
                url
            }
        };
        let client = OpenAiClient::new(OpenAiConfig::new(url)).unwrap();
        let baseline = rss_kib();
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(baseline));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let result = Runner::builder(client, |_: &RequestCtx| {
            OpenAiRequest::new("Tell a slow story")
        })
        .closed_loop(FixedUsers::new(streams).unwrap())
        .requests(u64::from(streams))
        .build()
        .unwrap()
        .run()
        .await;
        sampler.abort();
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        let c = &result.stats.counters;
        let itl = &result.stats.itl;
        println!(
            "streams {streams} ok {} failed {} chunks {}",
            c.succeeded, c.failed, c.content_chunks
        );
        println!(
            "rss baseline {baseline} KiB peak {peak} KiB: {:.1} KiB per stream",
            (peak - baseline) as f64 / f64::from(streams)
        );
        println!(
            "itl p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
            itl.quantile(0.5).as_secs_f64() * 1e3,
            itl.quantile(0.99).as_secs_f64() * 1e3,
            itl.max().as_secs_f64() * 1e3
        );
        for e in result.stats.errors.top(5) {
            println!("error [{}x] {}: {}", e.count, e.class, e.message);
        }
    });
}
