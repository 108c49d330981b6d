//! An Ollama native API load-testing client for loadkit: `POST /api/chat` and `/api/generate`,
//! NDJSON streaming (one JSON object per line, lines split or merged across reads) and
//! `"stream": false`, with the server's own timings recorded next to the client's.
//!
//! [`OllamaClient`] implements [`loadkit_core::Client`]; [`OllamaClient::check_model`] asks
//! `GET /api/tags` whether the model is pulled before a run.
//!
//! # What is measured
//!
//! | | |
//! |---|---|
//! | chunk | a line with non-empty `message.content` / `response` (`thinking` counts, flagged as reasoning) |
//! | tokens | `prompt_eval_count` / `eval_count` of the final `done: true` line |
//! | TTFT | first content line − sent (model load and prompt evaluation included) |
//! | server metrics | `server_load`, `server_prompt_eval`, `server_eval`, `server_total` (from the final line) |
//! | overhead | `client_overhead` = client time to the final line − `total_duration` (queueing, network) |
//! | cold loads | `cold_load`: `load_duration` of requests above the threshold; its count is the number of cold loads |
//!
//! # Errors
//!
//! | what happened | class |
//! |---|---|
//! | non-2xx status (`404 model "x" not found`) | `http_status`, with the body's `error` |
//! | `{"error": "..."}` line or body | `server_error` |
//! | stream ended without `done: true` | `truncated` |
//! | a line that is not JSON, an oversized line | `protocol` |
//!
//! # Performance
//!
//! Lines are framed by [`loadkit_sse::NdjsonDecoder`] (slices of one reused buffer) and
//! deserialized into structs that only measure the text: nothing is allocated per content line,
//! escaped text included (error and tool-call lines excepted, see `parse.rs`).

mod client;
mod parse;
pub mod protocol;

pub use client::{
    HealthError, OllamaClient, OllamaConfig, OllamaConfigError, OllamaEndpoint, OllamaRequest,
};
pub use parse::{metric, parse_line};
