//! Throughput of the whole client (HTTP, SSE framing, JSON parsing, engine bookkeeping) in
//! content events per client CPU-second, against the simulated server streaming unpaced.
//!
//! The server runs on its own thread and runtime; the client (runner, collector, connections)
//! runs on the main thread's single-threaded runtime, whose CPU time (user + system)
//! is read from `/proc/thread-self/stat` (Linux, 10 ms resolution: run long enough). Run it with
//! `cargo run --release -p loadkit-openai --example throughput -- [users] [tokens] [requests]`.

use std::time::Instant;

use loadkit_core::schedule::FixedUsers;
use loadkit_core::{RequestCtx, Runner};
use loadkit_openai::{OpenAiClient, OpenAiConfig, OpenAiRequest};
use loadkit_testbed::openai::{self, SimConfig};

#[path = "common/thread_cpu.rs"]
mod thread_cpu;
use thread_cpu::thread_cpu;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("numbers"));
    let users = args.next().unwrap_or(8) as u32;
    let tokens = args.next().unwrap_or(1_000) as u32;
    let requests = args.next().unwrap_or(2_000);

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sim-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = openai::serve(SimConfig::unpaced(tokens)).await.unwrap();
                tx.send(server.base_url()).unwrap();
                std::future::pending::<()>().await;
            });
        })
        .expect("a server thread");
    let base_url = rx.recv().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = OpenAiConfig {
        max_tokens: Some(tokens),
        ..OpenAiConfig::new(base_url)
    };
    let client = OpenAiClient::new(config).unwrap();
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    let result = rt.block_on(
        Runner::builder(client, |_: &RequestCtx| {
            OpenAiRequest::new("Count to a thousand")
        })
        .closed_loop(FixedUsers::new(users).unwrap())
        .requests(requests)
        .build()
        .unwrap()
        .run(),
    );
    let cpu = thread_cpu() - cpu0;
    let wall = wall0.elapsed();
    let c = &result.stats.counters;
    let events = c.content_chunks;
    println!(
        "users {users} tokens/request {tokens} requests {} failed {} events {events} bytes {}",
        c.succeeded, c.failed, c.bytes
    );
    println!(
        "client cpu {:.3} s, wall {:.3} s: {:.0} events per client cpu-second, {:.0} per wall second",
        cpu.as_secs_f64(),
        wall.as_secs_f64(),
        events as f64 / cpu.as_secs_f64(),
        events as f64 / wall.as_secs_f64(),
    );
}
