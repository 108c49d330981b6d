//! HTTP client plumbing and incremental stream framing for loadkit's protocol clients.
//!
//! - [`HttpClient`]: hyper 1 with a pooled keep-alive HTTP/1.1 connector (`TCP_NODELAY`,
//!   connect timeout) and rustls for `https` (`ring` provider, Mozilla roots). It marks the
//!   first byte and the body bytes on the request's [`Probe`](loadkit_core::Probe), enforces a
//!   first-byte timeout and an idle timeout between body frames, and classifies every failure
//!   into loadkit's taxonomy (`connect`, `tls`, `timeout (connect|first_byte|idle)`,
//!   `truncated`, `protocol`).
//! - [`preflight`]: opens one connection (TCP, plus TLS for `https`) to check that a target is
//!   reachable before a run starts.
//! - [`SseDecoder`] and [`NdjsonDecoder`]: incremental, bounded framers that hand out events and
//!   lines as slices of one reused buffer, with no allocation per event.
//! - [`SseClient`]: a [`Client`](loadkit_core::Client) for any SSE endpoint (body template,
//!   content pointer, end marker, success rule, and a count-only mode that parses no JSON).
//! - [`PlainClient`]: non-streaming request/response ("batch") load with the same template.
//! - [`BodyTemplate`]: `{{prompt}}`-style request bodies, JSON-escaped and checked up front.
//! - [`message`]: error messages on one short line, and `serde_json` errors as protocol errors.
//!
//! # Example: frame a Server-Sent Events stream
//!
//! ```
//! use loadkit_sse::SseDecoder;
//!
//! let mut sse = SseDecoder::new(loadkit_sse::DEFAULT_MAX_EVENT_SIZE);
//! let mut datas = Vec::new();
//! for read in [&b"data: he"[..], b"llo\r\n\r\n: ping\n\ndata: [DO", b"NE]\n\n"] {
//!     sse.push(read);
//!     while let Some(event) = sse.next_event()? {
//!         datas.push(event.data_str()?.to_owned());
//!     }
//! }
//! assert_eq!(datas, ["hello", "[DONE]"]);
//! # Ok::<(), loadkit_sse::FrameError>(())
//! ```
//!
//! # Invariants
//!
//! - Nothing here measures time: milestones go on the probe, which the engine stamps.
//! - Error messages carry no per-request values, so identical failures group in the report.
//! - The framers never hold more than about one maximum-size event plus one received frame.

mod classify;
mod connect;
mod frame;
mod generic;
mod header;
mod http;
pub mod message;
mod ndjson;
mod plain;
mod pointer;
pub mod protocol;
mod spec;
mod sse;
mod template;
mod text_len;

pub use frame::{FrameError, DEFAULT_MAX_EVENT_SIZE};
pub use generic::{EndMarker, SseClient, SseOptions};
pub use header::{insert_headers, HeaderError};
pub use http::{
    parse_url, preflight, ConfigError, HttpClient, HttpConfig, Response, ResponseBody, DRAIN_GRACE,
    ERROR_BODY_LIMIT, FINISH_INLINE,
};
pub use ndjson::NdjsonDecoder;
pub use plain::{Expect, PlainClient, PlainOptions, TIME_TO_HEADERS};
pub use pointer::{JsonPointer, PointerError};
pub use spec::{RequestSpec, SpecError, StatusRule, TemplateRequest};
pub use sse::{SseDecoder, SseEvent};
pub use template::{BodyTemplate, Placeholder, TemplateError, TemplateValues};
pub use text_len::TextLen;
