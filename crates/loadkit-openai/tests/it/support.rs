//! Helpers shared by the integration tests: run a client through the engine, read its errors.

use std::time::Duration;

use loadkit_core::{RequestCtx, RunResult};
use loadkit_openai::{OpenAiClient, OpenAiConfig, OpenAiRequest};
pub(crate) use loadkit_testbed::harness::{self, errors};

/// The prompt every test request sends (5 words).
pub(crate) const PROMPT: &str = "Say hello to the tester";

/// Runs `requests` requests with `users` closed-loop users.
pub(crate) async fn run(config: OpenAiConfig, requests: u64, users: u32) -> RunResult {
    let client = OpenAiClient::new(config).expect("a valid config");
    run_client(client, requests, users).await
}

/// Runs `requests` requests of `client` with `users` closed-loop users.
pub(crate) async fn run_client(client: OpenAiClient, requests: u64, users: u32) -> RunResult {
    harness::run(
        client,
        |_: &RequestCtx| OpenAiRequest::new(PROMPT),
        requests,
        users,
    )
    .await
}

/// A config for `base_url` with short timeouts.
pub(crate) fn config(base_url: &str) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(base_url);
    config.model = Some("loadkit-sim".into());
    config.http.connect_timeout = Duration::from_secs(2);
    config.http.first_byte_timeout = Duration::from_secs(5);
    config.http.idle_timeout = Duration::from_secs(5);
    config
}
