//! Incremental stream framing and the schema-free clients, on loadkit-http's `HttpClient`.
//!
//! - [`SseDecoder`] and [`NdjsonDecoder`]: incremental, bounded framers that hand out events and
//!   lines as slices of one reused buffer, with no allocation per event.
//! - [`SseClient`]: a [`Client`](loadkit_core::Client) for any SSE endpoint (body template,
//!   content pointer, end marker, success rule, and a count-only mode that parses no JSON).
//! - [`PlainClient`]: non-streaming request/response ("batch") load with the same template.
//! - [`BodyTemplate`]: `{{prompt}}`-style request bodies, JSON-escaped and checked up front.
//! - [`message`]: `serde_json` errors as groupable protocol errors (and loadkit-http's server
//!   message helpers, re-exported).
//! - [`JsonPointer`], [`TextLen`]: one field of a JSON message, and a JSON string's length,
//!   read without building a tree.
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

mod frame;
mod generic;
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
pub use ndjson::NdjsonDecoder;
pub use plain::{Expect, PlainClient, PlainOptions, TIME_TO_HEADERS};
pub use pointer::{JsonPointer, PointerError};
pub use spec::{RequestSpec, SpecError, StatusRule, TemplateRequest};
pub use sse::{SseDecoder, SseEvent};
pub use template::{BodyTemplate, Placeholder, TemplateError, TemplateValues};
pub use text_len::TextLen;
