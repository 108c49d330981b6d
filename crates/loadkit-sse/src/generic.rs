//! `SseClient`: load-tests any endpoint that streams Server-Sent Events (a FastAPI
//! `EventSourceResponse`, a custom gateway, ...): what a chunk is, where the stream ends, and
//! which responses count as a success are all configured.

use loadkit_core::{Client, Probe, RequestError};

use crate::message::{error_body_message, json_error, server_message, DataErrors};
use crate::pointer::{Found, JsonPointer};
use crate::spec::{Prepared, RequestSpec, SpecError, TemplateRequest};
use loadkit_http::{HttpClient, HttpConfig, ResponseBody};

use crate::{SseDecoder, SseEvent};

/// Where a stream ends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EndMarker {
    /// When the server closes the body (every clean end is complete).
    #[default]
    Close,
    /// At an event whose data is exactly this text (e.g. `[DONE]`); it is not a chunk.
    Data(String),
    /// At an event of this type (`event: done`); it is not a chunk.
    Event(String),
}

impl EndMarker {
    /// `close`, `event:NAME`, or any other text as a data marker (`[DONE]`).
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.eq_ignore_ascii_case("close") || text.is_empty() {
            EndMarker::Close
        } else if let Some(name) = text.strip_prefix("event:") {
            EndMarker::Event(name.trim().to_owned())
        } else {
            EndMarker::Data(text.to_owned())
        }
    }

    fn describe(&self) -> String {
        match self {
            EndMarker::Close => "the end of the stream".to_owned(),
            EndMarker::Data(d) => d.clone(),
            EndMarker::Event(e) => format!("event: {e}"),
        }
    }
}

/// How a generic SSE stream is read and judged.
#[derive(Debug, Clone)]
pub struct SseOptions {
    /// What to send.
    pub request: RequestSpec,
    /// The JSON field whose non-empty value makes an event a content chunk (e.g.
    /// `/choices/0/delta/content`). `None`: every `data:` event is a chunk.
    pub content_pointer: Option<String>,
    /// Where the stream ends. A configured marker that never comes makes the request
    /// `truncated`.
    pub end: EndMarker,
    /// A success needs at least this many chunks (`3` means "more than 2"); fewer is a
    /// `validation` failure. Default 1.
    pub min_chunks: u64,
    /// Count `data:` events without looking inside them: no JSON parsing at all, the cheapest
    /// client-side cost. Conflicts with `content_pointer`.
    pub count_only: bool,
    /// Timeouts, pooling and size limits.
    pub http: HttpConfig,
}

impl SseOptions {
    /// Options for `request` with every other setting at its default.
    pub fn new(request: RequestSpec) -> Self {
        Self {
            request,
            content_pointer: None,
            end: EndMarker::Close,
            min_chunks: 1,
            count_only: false,
            http: HttpConfig::default(),
        }
    }
}

/// A client for any SSE endpoint.
///
/// - A **chunk** is a `data:` event that is not the end marker: in count-only mode every such
///   event; with a content pointer, an event whose field at the pointer is a non-empty string
///   or any non-null value; otherwise every event (a JSON event with a top-level `"error"` is a
///   `server_error`, a malformed one a `protocol` error). Each chunk is one output unit.
/// - `event: error` is a `server_error` in every mode; comments (`: ping`) are never chunks.
/// - A response is a success when its status passes the status rule, the end marker (if any)
///   came, and at least `min_chunks` chunks arrived.
#[derive(Debug)]
pub struct SseClient {
    http: HttpClient,
    prepared: Prepared,
    pointer: Option<JsonPointer>,
    end: EndMarker,
    min_chunks: u64,
    count_only: bool,
    max_event_size: usize,
}

impl SseClient {
    /// A client for `options`; fails on an invalid URL, method, header, pointer or setting.
    pub fn new(options: SseOptions) -> Result<Self, SpecError> {
        if options.count_only && options.content_pointer.is_some() {
            return Err(SpecError::Conflict(
                "count-only mode does not parse json: it cannot use a content pointer",
            ));
        }
        let pointer = options
            .content_pointer
            .as_deref()
            .map(JsonPointer::parse)
            .transpose()?;
        Ok(Self {
            http: HttpClient::new(options.http.clone())?,
            prepared: Prepared::new(options.request, "text/event-stream")?,
            pointer,
            end: options.end,
            min_chunks: options.min_chunks,
            count_only: options.count_only,
            max_event_size: options.http.max_event_size,
        })
    }

    /// The URL requests go to.
    pub fn uri(&self) -> &http::Uri {
        &self.prepared.uri
    }

    /// Handles one event: `Ok(true)` when it is the end marker.
    #[inline]
    fn event(&self, event: &SseEvent<'_>, probe: &mut Probe) -> Result<bool, RequestError> {
        match (&self.end, event.event) {
            (EndMarker::Event(name), Some(kind)) if kind == name.as_bytes() => return Ok(true),
            (_, Some(b"error")) => {
                return Err(RequestError::server(error_body_message(event.data)));
            }
            _ => {}
        }
        if let EndMarker::Data(marker) = &self.end {
            if event.data.trim_ascii() == marker.as_bytes() {
                return Ok(true);
            }
        }
        if self.count_only {
            if !event.data.is_empty() {
                probe.content(1, event.data.len());
            }
            return Ok(false);
        }
        let data = event.data.trim_ascii();
        if data.is_empty() {
            return Ok(false);
        }
        let found = match &self.pointer {
            Some(pointer) => pointer.find(data).map_err(malformed)?,
            None if data.starts_with(b"{") => {
                static WHOLE: std::sync::OnceLock<JsonPointer> = std::sync::OnceLock::new();
                let whole = WHOLE.get_or_init(|| JsonPointer::parse("").expect("valid"));
                match whole.find(data).map_err(malformed)? {
                    Found::Error(e) => Found::Error(e),
                    _ => Found::Text(data.len()),
                }
            }
            None => Found::Text(data.len()),
        };
        match found {
            Found::Text(0) | Found::Nothing => {}
            Found::Text(n) => probe.content(1, n),
            Found::Other => probe.content(1, 0),
            Found::Error(message) => {
                return Err(RequestError::server(server_message(
                    message.as_deref().unwrap_or(""),
                )))
            }
        }
        Ok(false)
    }

    async fn read(&self, mut body: ResponseBody, probe: &mut Probe) -> Result<(), RequestError> {
        let mut sse = SseDecoder::new(self.max_event_size);
        let mut ended = false;
        'read: while let Some(bytes) = body.chunk(probe).await? {
            sse.push(&bytes);
            while let Some(event) = sse.next_event()? {
                if self.event(&event, probe)? {
                    ended = true;
                    break 'read;
                }
            }
        }
        if ended {
            // The request ends at the end marker; draining for reuse is off the clock.
            probe.mark_end();
            body.finish().await;
        } else {
            if let Some(event) = sse.finish() {
                ended = self.event(&event, probe)?;
            }
            if !ended && self.end != EndMarker::Close {
                return Err(RequestError::truncated(format!(
                    "stream ended before {}",
                    self.end.describe()
                )));
            }
        }
        let chunks = probe.content_chunks();
        if chunks < self.min_chunks {
            return Err(RequestError::validation(format!(
                "too few chunks: got {chunks}, the success rule needs at least {} (more than {})",
                self.min_chunks,
                self.min_chunks - 1
            )));
        }
        Ok(())
    }
}

fn malformed(e: serde_json::Error) -> RequestError {
    json_error("malformed event", &e, DataErrors::Fixed)
}

impl Client for SseClient {
    type Request = TemplateRequest;
    type Session = ();

    async fn call(
        &self,
        _: &mut (),
        request: TemplateRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let http = self.prepared.request(&request);
        drop(request);
        let response = self.http.send(http, probe).await?;
        let status = response.status.as_u16();
        if !self.prepared.success_status.accepts(status) {
            return Err(response.error(probe).await);
        }
        response.expect_event_stream()?;
        self.read(response.body, probe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_markers() {
        assert_eq!(EndMarker::parse("close"), EndMarker::Close);
        assert_eq!(EndMarker::parse("[DONE]"), EndMarker::Data("[DONE]".into()));
        assert_eq!(
            EndMarker::parse("event: end"),
            EndMarker::Event("end".into())
        );
    }

    #[test]
    fn count_only_refuses_a_pointer() {
        let mut options = SseOptions::new(RequestSpec::new("http://127.0.0.1:9/s"));
        options.count_only = true;
        options.content_pointer = Some("/a".into());
        assert!(matches!(
            SseClient::new(options),
            Err(SpecError::Conflict(_))
        ));
    }
}
