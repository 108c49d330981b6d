//! `PlainClient`: non-streaming request/response load ("batch" traffic) with the same body
//! template as the SSE client, judged by status and, optionally, a JSON field.

use std::time::Duration;

use loadkit_core::{Client, Probe, RequestError};

use crate::pointer::JsonPointer;
use crate::spec::{Prepared, RequestSpec, SpecError, TemplateRequest};
use loadkit_http::{HttpClient, HttpConfig};

/// The name of the time-to-headers metric a [`PlainClient`] records.
pub const TIME_TO_HEADERS: &str = "time_to_headers";

/// What a successful body must contain.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// The JSON pointer that must exist in the body.
    pub pointer: String,
    /// If given, the value it must equal (compared as JSON).
    pub value: Option<serde_json::Value>,
}

/// How plain requests are sent and judged.
#[derive(Debug, Clone)]
pub struct PlainOptions {
    /// What to send (the status rule is in it).
    pub request: RequestSpec,
    /// An optional body check.
    pub expect: Option<Expect>,
    /// Timeouts, pooling and size limits.
    pub http: HttpConfig,
}

impl PlainOptions {
    /// Options for `request` with no body check and default HTTP settings.
    pub fn new(request: RequestSpec) -> Self {
        Self {
            request,
            expect: None,
            http: HttpConfig::default(),
        }
    }
}

/// A non-streaming HTTP client.
///
/// Each response is one content chunk (one output unit of the body's size) marked when the
/// whole body has arrived, so TTFT and E2E are both "time to full body"; the time to the
/// response head is recorded as the `time_to_headers` metric. A status outside the rule is an
/// `http_status` error; a body that fails the [`Expect`] check is a `validation` error.
#[derive(Debug)]
pub struct PlainClient {
    http: HttpClient,
    prepared: Prepared,
    expect: Option<(JsonPointer, Option<serde_json::Value>)>,
    max_body_size: usize,
}

impl PlainClient {
    /// A client for `options`; fails on an invalid URL, method, header, pointer or setting.
    pub fn new(options: PlainOptions) -> Result<Self, SpecError> {
        let expect = options
            .expect
            .map(|e| JsonPointer::parse(&e.pointer).map(|p| (p, e.value)))
            .transpose()?;
        Ok(Self {
            http: HttpClient::new(options.http.clone())?,
            prepared: Prepared::new(options.request, "*/*")?,
            expect,
            max_body_size: options.http.max_body_size,
        })
    }

    /// The URL requests go to.
    pub fn uri(&self) -> &http::Uri {
        &self.prepared.uri
    }

    fn check(&self, body: &[u8]) -> Result<(), RequestError> {
        let Some((pointer, want)) = &self.expect else {
            return Ok(());
        };
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| RequestError::validation("the body is not json"))?;
        match (value.pointer(pointer.as_str()), want) {
            (None, _) => Err(RequestError::validation(format!(
                "the body has no {}",
                pointer.as_str()
            ))),
            (Some(got), Some(want)) if got != want => Err(RequestError::validation(format!(
                "{} is not {want}",
                pointer.as_str()
            ))),
            _ => Ok(()),
        }
    }
}

impl Client for PlainClient {
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
        probe.span(TIME_TO_HEADERS, probe.sent_stamp(), Duration::ZERO);
        let status = response.status.as_u16();
        if !self.prepared.success_status.accepts(status) {
            return Err(response.error(probe).await);
        }
        let body = response.body.collect(self.max_body_size, probe).await?;
        probe.content(1, body.len());
        self.check(&body)
    }
}
