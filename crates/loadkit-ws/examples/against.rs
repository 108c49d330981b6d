//! Drives `WsChatClient` against a WebSocket chat server given by URL (e.g. the `websockets`
//! server in `testdata/websockets_chat_server.py`) through loadkit's engine and prints what
//! happened: outcomes, grouped errors, TTFT / ITL / TPOT / E2E, token counts.
//!
//! ```text
//! cargo run -p loadkit-ws --example against -- ws://127.0.0.1:8765/ws/chat/v2 \
//!     [--prompt-words 40] [--requests 4] [--users 1] [--max-tokens 128] [--min-tokens N]
//!     [--ping-interval 20s | --no-ping] [--ping-timeout 20s] [--idle-timeout 30s]
//!     [--connection per-user|per-request] [--interval 4s]
//! ```
//!
//! `--interval` starts each user's requests that far apart (fixed-interval pacing), so a
//! per-user connection sits idle between them.

use std::time::Duration;

use loadkit_core::prompt::PromptSource;
use loadkit_core::schedule::{FixedInterval, FixedUsers};
use loadkit_core::{RequestCtx, Runner};
use loadkit_ws::{WsChatClient, WsChatConfig, WsRequest};

fn duration(text: &str) -> Duration {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    Duration::from_secs_f64(
        number
            .parse::<f64>()
            .expect("a duration such as 20s or 150ms")
            * scale,
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: against URL [--prompt-words N] [--requests N] ...");
    let mut config = WsChatConfig::new(url);
    let (mut words, mut requests, mut users) = (40usize, 4u64, 1u32);
    let mut interval = None;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--prompt-words" => words = value().parse().unwrap(),
            "--requests" => requests = value().parse().unwrap(),
            "--users" => users = value().parse().unwrap(),
            "--max-tokens" => config.max_tokens = value().parse().unwrap(),
            "--min-tokens" => config.min_tokens = Some(value().parse().unwrap()),
            "--ping-interval" => config.ping_interval = Some(duration(&value())),
            "--no-ping" => config.ping_interval = None,
            "--ping-timeout" => config.ping_timeout = duration(&value()),
            "--idle-timeout" => config.idle_timeout = duration(&value()),
            "--connection" => config.connection = value().parse().unwrap(),
            "--interval" => interval = Some(duration(&value())),
            other => panic!("unknown flag {other}"),
        }
    }
    println!(
        "target {}  prompt {words} words  {requests} requests by {users} user(s)  ping {}  ping timeout {:?}  {}",
        config.url,
        config
            .ping_interval
            .map_or("off".to_owned(), |p| format!("every {p:?}")),
        config.ping_timeout,
        config.connection.name(),
    );
    if let Err(e) = loadkit_ws::preflight(
        &config.url,
        &config.headers,
        config.connect_timeout,
        &config.tls,
    )
    .await
    {
        println!("preflight: {e}");
        return;
    }
    let client = WsChatClient::new(config).expect("a valid configuration");
    let prompts = PromptSource::Words { words, seed: 7 };
    let source = move |ctx: &RequestCtx| WsRequest {
        prompt: prompts.prompt(ctx.seq),
        system: None,
        seq: ctx.seq,
        user: ctx.user,
    };
    let builder = Runner::builder(client, source);
    let builder = match interval {
        Some(every) => {
            builder.closed_loop(FixedInterval::new(users, every).expect("a valid interval"))
        }
        None => builder.closed_loop(FixedUsers::new(users).expect("at least one user")),
    };
    let result = builder
        .requests(requests)
        .timeout(Some(Duration::from_secs(300)))
        .build()
        .expect("a valid run")
        .run()
        .await;
    let s = &result.stats;
    let c = &s.counters;
    println!(
        "succeeded {}  failed {}  stale-connection retries {}  wall {:.2}s",
        c.succeeded,
        c.failed,
        c.stale_connection_retries,
        result.elapsed.as_secs_f64()
    );
    for g in s.errors.top(10) {
        println!("  [{}x] {}: {}", g.count, g.class, g.message);
    }
    if c.succeeded > 0 {
        println!(
            "ttft p50 {:.1} ms  p95 {:.1} ms | itl p50 {:.2} ms | tpot p50 {:.2} ms | e2e p50 {:.1} ms",
            ms(s.ttft.quantile(0.5)),
            ms(s.ttft.quantile(0.95)),
            ms(s.itl.quantile(0.5)),
            ms(s.tpot.quantile(0.5)),
            ms(s.e2e.quantile(0.5)),
        );
        println!(
            "tokens: out {} ({} requests from the server's done, {} counted), in {}, content messages {}",
            c.output_tokens, c.tokens_from_server, c.tokens_counted, c.input_tokens, c.content_chunks
        );
    }
}
