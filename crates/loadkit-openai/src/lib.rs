//! An OpenAI-compatible load-testing client for loadkit: `/v1/chat/completions` and
//! `/v1/completions`, streaming (SSE) and not, against any server that speaks the API (vLLM,
//! llama.cpp's `llama-server`, TGI, LiteLLM, OpenAI itself).
//!
//! [`SpeechClient`] is OpenAI-compatible text to speech (`POST /v1/audio/speech`, WAV or PCM,
//! streamed or whole): time to first audio, the audio's duration from its samples, the
//! real-time factor (`--protocol tts-http`).
//!
//! [`OpenAiClient`] implements [`loadkit_core::Client`]: drive it with a
//! [`Runner`](loadkit_core::Runner) and a workload that makes [`OpenAiRequest`]s.
//!
//! # What is measured
//!
//! Exactly loadkit's measurement model (docs/metrics.md):
//!
//! - the first byte is the response head;
//! - a content chunk is a chunk carrying non-empty generated text: `delta.content`,
//!   `delta.reasoning_content` / `delta.reasoning` (flagged as reasoning), tool-call name and
//!   argument fragments, or `text` for completions. Role-only chunks, `content: null`, empty
//!   strings, `finish_reason`-only chunks and usage-only chunks (`"choices": []`) are not content;
//! - `usage.prompt_tokens` / `usage.completion_tokens` are recorded when the server sends them
//!   (streams ask for them with `stream_options.include_usage`); otherwise output tokens are the
//!   content chunks counted;
//! - a non-streaming response is one content chunk of `completion_tokens` units (1 without usage).
//!
//! # Tool calling
//!
//! [`OpenAiClient::with_tools`] offers tools in every request; when the model answers with
//! `tool_calls`, deterministic fake results are appended and the model is asked again, up to a
//! maximum number of tool rounds. A conversation is one engine request (TTFT: the first content
//! of the first round; E2E: the whole conversation); each round's latency is the metric
//! `tool_round_K`, and [`ToolReport::from_stats`] reads the rounds per conversation from the
//! run's tallies. Tool-call
//! fragments are accumulated (that allocates, for tool-call chunks only).
//!
//! # Errors
//!
//! | what happened | class | message |
//! |---|---|---|
//! | non-2xx status | `http_status` | `HTTP 503: <error.message or body snippet>` |
//! | stream ended without `[DONE]` and without a `finish_reason` | `truncated` | `stream ended before [DONE]` |
//! | connection reset / closed inside the body | `truncated` | `connection reset mid-stream` |
//! | a chunk that is not valid JSON (or not UTF-8) | `protocol` | `malformed chunk: ...` |
//! | an event larger than the limit | `protocol` | `sse event exceeds the maximum size of N bytes` |
//! | streaming asked, 200 answered with another media type | `protocol` | `expected text/event-stream, got ...` |
//! | `{"error": {...}}` inside the stream, or `event: error` | `server_error` | the error's message |
//! | refused, DNS, TLS, deadlines | `connect`, `tls`, `timeout` | see [`loadkit_http::HttpClient`] |
//!
//! A stream that has a `finish_reason` but ends without `[DONE]` succeeds: some servers omit
//! `[DONE]`, and a stream that said why it finished is complete.
//!
//! # Performance
//!
//! Per chunk, the client does no allocation and takes no lock: the SSE framer hands out slices of
//! one reused buffer, and chunks are deserialized into borrowed structs that only measure the
//! generated text, escaped or not (see `parse.rs` for the two exceptions: error chunks, and
//! ignored fields nested two deep such as `logprobs` objects). Per request it allocates the JSON
//! body and a header map.

mod client;
mod config;
mod parse;
pub mod protocol;
pub mod speech;
mod tools;

pub use client::{OpenAiClient, OpenAiRequest};
pub use config::{Endpoint, OpenAiConfig, OpenAiConfigError};
pub use parse::ChunkParser;
pub use speech::{SpeechClient, SpeechConfig, SpeechFormat, SpeechRequest, SPEECH_PATH};
pub use tools::{tally, ToolReport, MAX_TOOL_CALLS, MAX_TOOL_ROUNDS, ROUND_METRICS};
