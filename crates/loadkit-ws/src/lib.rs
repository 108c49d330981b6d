//! WebSocket client plumbing and a generic JSON chat-over-WebSocket client for loadkit.
//!
//! - [`WsChatClient`]: a [`Client`](loadkit_core::Client) for a chat application's own
//!   WebSocket protocol: a JSON message template out ([`BodyTemplate`](loadkit_sse::BodyTemplate)
//!   placeholders), JSON messages back, read by [`Rule`]s saying which message is a token, the
//!   end or an error, and where the text and the server's token counts are. One connection per
//!   user (kept in the engine's [`Client::Session`](loadkit_core::Client::Session)) or one per
//!   request; pings while waiting, with a timeout; every failure classified.
//! - [`preflight`]: a real upgrade and a clean close, to report an unreachable target before a
//!   run.
//! - [`Target`] and [`Ws`]: opening a connection (TCP, TLS, upgrade, each failure classified),
//!   [`close_in_background`], and [`read_error`] / [`closed_error`] / [`dropped_error`], how a
//!   failure while reading is classified, for other WebSocket protocols (`loadkit-tts-ws`).
//! - [`MessageRules`]: the rules alone, reading one message in one pass with no allocation on
//!   the common shape (for tests and other WebSocket protocols).
//!
//! Transport: tokio-tungstenite for the WebSocket protocol, TCP with `TCP_NODELAY`, and for
//! `wss://` rustls with the `ring` provider and the Mozilla roots (as loadkit-sse sets up
//! HTTPS).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use loadkit_ws::{Connection, WsChatClient, WsChatConfig, WsRequest};
//!
//! let mut config = WsChatConfig::new("ws://127.0.0.1:8000/ws/chat/v2?room=load");
//! config.headers.push(("Authorization".into(), "Bearer t0ken".into()));
//! config.min_tokens = Some(64);
//! config.ping_interval = None; // --no-ping
//! config.connection = Connection::PerRequest;
//! let client = WsChatClient::new(config).unwrap();
//! assert_eq!(
//!     client.render(&WsRequest::new("Hello")),
//!     r#"{"type":"chat","prompt":"Hello","max_tokens":128,"min_tokens":64}"#
//! );
//! assert_eq!(client.end_rule().to_string(), "/type=done");
//! assert!(WsChatClient::new(WsChatConfig::new("http://127.0.0.1:8000/ws")).is_err());
//! ```
//!
//! # Invariants
//!
//! - Nothing here measures time: milestones go on the probe, which the engine stamps.
//! - Error messages carry no per-request values, so identical failures group in the report.
//! - No lock and no allocation of ours on the per-message path (tungstenite allocates each
//!   message it receives).
//! - Depends on loadkit-core and loadkit-sse only.

mod client;
mod config;
mod connect;
pub mod protocol;
mod rules;

pub use client::{preflight, PreflightError, WsChatClient, WsRequest, WsSession};
pub use config::{
    Connection, WsChatConfig, WsConfigError, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MESSAGE,
};
pub use connect::{
    close, close_in_background, close_name, closed_error, dropped_error, is_closed, read_error,
    Stream, Target, Ws, CLOSE_GRACE,
};
pub use rules::{error_text, Expect, MessageRules, Rule, Step};
