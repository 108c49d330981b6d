//! What the test modules share: a client configuration with short deadlines, a closed-loop run
//! of a fixed prompt, and the count of one error group.

use std::time::Duration;

use loadkit_core::{RequestCtx, RunResult};
use loadkit_testbed::harness;
use loadkit_testbed::ws_chat::{WsChatServer, WsChatStats};
use loadkit_ws::{WsChatClient, WsChatConfig, WsRequest};

/// Five words: the server reports `tokens_in: 5`.
pub(crate) const PROMPT: &str = "Say hello to the tester";

/// The defaults for `url`, with deadlines short enough for tests and long enough for a busy
/// machine.
pub(crate) fn config(url: &str) -> WsChatConfig {
    let mut c = WsChatConfig::new(url);
    c.connect_timeout = Duration::from_secs(2);
    c.first_byte_timeout = Duration::from_secs(5);
    c.idle_timeout = Duration::from_secs(5);
    c
}

/// The request of `ctx` with [`PROMPT`].
pub(crate) fn request(ctx: &RequestCtx) -> WsRequest {
    WsRequest {
        prompt: PROMPT.into(),
        system: None,
        seq: ctx.seq,
        user: ctx.user,
    }
}

/// `requests` requests of [`PROMPT`] by `users` closed-loop users.
pub(crate) async fn run(config: WsChatConfig, requests: u64, users: u32) -> RunResult {
    let client = WsChatClient::new(config).expect("a valid config");
    harness::run(client, request, requests, users).await
}

/// How many requests of `result` failed with exactly this class and message.
pub(crate) fn count(result: &RunResult, class: &str, message: &str) -> u64 {
    harness::errors(result)
        .iter()
        .find(|(c, m, _)| c == class && m == message)
        .map_or(0, |e| e.2)
}

/// Awaits (up to 3 s) the server's counters satisfying `done`, for what finishes in the
/// background (polite closes); `true` if they did.
pub(crate) async fn eventually(server: &WsChatServer, done: impl Fn(&WsChatStats) -> bool) -> bool {
    tokio::time::timeout(Duration::from_secs(3), server.wait_until(done))
        .await
        .is_ok()
}
