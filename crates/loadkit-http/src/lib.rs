//! HTTP client plumbing for loadkit's protocol clients, with no stream format of its own: what
//! OpenAI-compatible SSE, Ollama's NDJSON, plain batch requests and multipart uploads all send
//! their requests through.
//!
//! - [`HttpClient`]: hyper 1 with a pooled keep-alive HTTP/1.1 connector (`TCP_NODELAY`,
//!   connect timeout) and rustls for `https` (`ring` provider, Mozilla roots plus any private CA, see [`tls`]). It marks the
//!   first byte and the body bytes on the request's [`Probe`](loadkit_core::Probe), enforces a
//!   first-byte timeout and an idle timeout between body frames, retries once a request that met
//!   a connection the server closed while idle, and classifies every failure into loadkit's
//!   taxonomy (`connect`, `tls`, `timeout (connect|first_byte|idle)`, `truncated`, `protocol`).
//! - [`ResponseBody::finish`]: after the end marker, the rest of a body is drained off the clock.
//! - [`preflight`]: opens one connection (TCP, plus TLS for `https`) to check that a target is
//!   reachable before a run starts.
//! - [`tls`]: the TLS client setup shared with loadkit-ws (verified by default, private CAs,
//!   `insecure` on request).
//! - [`insert_headers`]: the user's extra headers, checked once ([`HeaderError`]).
//! - [`message`]: the one extractor of server error messages (OpenAI, Ollama, FastAPI, text).
//! - [`protocol`]: what an HTTP-based protocol's registration shares (settings, pre-flight,
//!   and with the `simulator` feature the handle over a testbed server).
//!
//! # Invariants
//!
//! - Nothing here measures time: milestones go on the probe, which the engine stamps.
//! - Error messages carry no per-request values, so identical failures group in the report.
//! - No stream format: framing (SSE, NDJSON) lives in loadkit-sse.

mod body;
mod classify;
mod connect;
mod header;
mod http;
pub mod message;
mod pool;
pub mod protocol;
pub mod tls;

pub use body::UPLOAD_CHUNK;
pub use header::{insert_headers, parse_header, HeaderError};
pub use http::{
    parse_url, preflight, preflight_with, retry_after, HttpClient, HttpConfig, HttpConfigError,
    Response, ResponseBody, DEFAULT_MAX_EVENT_SIZE, DRAIN_GRACE, ERROR_BODY_LIMIT, FINISH_INLINE,
    MIN_READ_BUFFER, RETRY_AFTER_MAX,
};
