//! `FrameError`: why a byte stream could not be cut into events or lines, shared by the SSE and
//! NDJSON framers.

use loadkit_core::RequestError;

/// Default cap on one SSE event or NDJSON line (1 MiB), as `HttpConfig::max_event_size`.
///
/// A streamed LLM chunk is a few hundred bytes; a megabyte leaves room for large tool-call
/// arguments while bounding the memory one misbehaving stream can take.
pub use loadkit_http::DEFAULT_MAX_EVENT_SIZE;

/// The stream broke its framing.
///
/// Messages carry no per-request values, so identical failures group in the report. Converts
/// into a [`RequestError`] of class `protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// One SSE event grew past the configured maximum before it ended.
    #[error("sse event exceeds the maximum size of {limit} bytes")]
    EventTooLarge {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// One NDJSON line grew past the configured maximum before it ended.
    #[error("ndjson line exceeds the maximum size of {limit} bytes")]
    LineTooLarge {
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// An event's data or a line is not valid UTF-8.
    #[error("invalid utf-8 in stream data")]
    InvalidUtf8,
}

impl From<FrameError> for RequestError {
    fn from(e: FrameError) -> Self {
        RequestError::protocol(e.to_string())
    }
}

/// Reads `bytes` as UTF-8, or fails with [`FrameError::InvalidUtf8`].
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(bytes).map_err(|_| FrameError::InvalidUtf8)
}
