//! `RequestSpec`: what the generic clients ([`SseClient`](crate::SseClient) and
//! [`PlainClient`](crate::PlainClient)) send — method, URL, headers and a body template — and
//! which statuses count as success.

use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};

use crate::pointer::PointerError;
use crate::template::{BodyTemplate, TemplateError, TemplateValues};
use loadkit_http::{parse_url, HttpConfigError};

/// One request of a generic client: the values its body template may insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRequest {
    /// `{{prompt}}`.
    pub prompt: Arc<str>,
    /// `{{seq}}` (and the seed of `{{uuid}}`).
    pub seq: u64,
    /// `{{user}}`.
    pub user: Option<u32>,
}

/// Which response statuses count as success: a list of classes (`2xx`) and codes (`204`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRule {
    classes: Vec<u16>,
    codes: Vec<u16>,
}

impl Default for StatusRule {
    /// `2xx`.
    fn default() -> Self {
        Self {
            classes: vec![2],
            codes: Vec::new(),
        }
    }
}

impl StatusRule {
    /// Whether `status` is a success.
    pub fn accepts(&self, status: u16) -> bool {
        self.classes.contains(&(status / 100)) || self.codes.contains(&status)
    }
}

impl FromStr for StatusRule {
    type Err = SpecError;

    /// `2xx`, `200`, or a comma-separated list such as `2xx,304`.
    fn from_str(text: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::InvalidStatusRule(text.to_owned());
        let mut rule = StatusRule {
            classes: Vec::new(),
            codes: Vec::new(),
        };
        for item in text.split(',').map(str::trim) {
            let lower = item.to_ascii_lowercase();
            if let Some(class) = lower.strip_suffix("xx") {
                match class.parse::<u16>() {
                    Ok(c) if (1..=5).contains(&c) => rule.classes.push(c),
                    _ => return Err(bad()),
                }
            } else {
                match item.parse::<u16>() {
                    Ok(c) if (100..=599).contains(&c) => rule.codes.push(c),
                    _ => return Err(bad()),
                }
            }
        }
        Ok(rule)
    }
}

/// A generic client's configuration cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The URL or an HTTP setting is unusable.
    #[error(transparent)]
    Http(#[from] HttpConfigError),
    /// The method is not a valid HTTP method.
    #[error("invalid http method {0:?}")]
    InvalidMethod(String),
    /// A header name or value is not valid HTTP.
    #[error(transparent)]
    InvalidHeader(#[from] loadkit_http::HeaderError),
    /// The body template is unusable.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A JSON pointer does not parse.
    #[error(transparent)]
    Pointer(#[from] PointerError),
    /// The success status rule does not parse.
    #[error("invalid success status {0:?} (use e.g. 2xx, 200, or 2xx,304)")]
    InvalidStatusRule(String),
    /// An option makes no sense with another.
    #[error("{0}")]
    Conflict(&'static str),
}

/// What a generic client sends: method, URL, headers and an optional body template.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// The full URL requests go to.
    pub url: String,
    /// The HTTP method (`POST` by default).
    pub method: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The body template (`None`: an empty body).
    pub body: Option<BodyTemplate>,
    /// `{{model}}`.
    pub model: String,
    /// `{{max_tokens}}`.
    pub max_tokens: u32,
    /// Seed of `{{uuid}}`.
    pub seed: u64,
    /// Which statuses are a success.
    pub success_status: StatusRule,
}

impl RequestSpec {
    /// A `POST` of no body to `url`, with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: "POST".to_owned(),
            headers: Vec::new(),
            body: None,
            model: String::new(),
            max_tokens: 128,
            seed: 0,
            success_status: StatusRule::default(),
        }
    }
}

/// A [`RequestSpec`] validated into what each request needs.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) uri: Uri,
    method: Method,
    headers: HeaderMap,
    body: Option<BodyTemplate>,
    model: String,
    max_tokens: u32,
    seed: u64,
    pub(crate) success_status: StatusRule,
}

impl Prepared {
    pub(crate) fn new(spec: RequestSpec, accept: &'static str) -> Result<Self, SpecError> {
        let uri = parse_url(&spec.url)?;
        let method = Method::from_bytes(spec.method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| SpecError::InvalidMethod(spec.method.clone()))?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(body) = &spec.body {
            let kind = if body.is_json() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        }
        loadkit_http::insert_headers(&spec.headers, &mut headers)?;
        Ok(Self {
            uri,
            method,
            headers,
            body: spec.body,
            model: spec.model,
            max_tokens: spec.max_tokens,
            seed: spec.seed,
            success_status: spec.success_status,
        })
    }

    pub(crate) fn request(&self, request: &TemplateRequest) -> http::Request<Bytes> {
        let body = match &self.body {
            Some(t) => Bytes::from(t.render(&TemplateValues {
                prompt: &request.prompt,
                max_tokens: self.max_tokens,
                model: &self.model,
                seq: request.seq,
                user: request.user,
                seed: self.seed,
            })),
            None => Bytes::new(),
        };
        let mut http = http::Request::new(body);
        *http.method_mut() = self.method.clone();
        *http.uri_mut() = self.uri.clone();
        *http.headers_mut() = self.headers.clone();
        http
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rules() {
        let rule: StatusRule = "2xx, 304".parse().unwrap();
        assert!(rule.accepts(200) && rule.accepts(299) && rule.accepts(304));
        assert!(!rule.accepts(301) && !rule.accepts(500));
        assert!(StatusRule::default().accepts(204));
        for bad in ["", "6xx", "2x", "abc", "99", "2xx,"] {
            assert!(bad.parse::<StatusRule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_are_built_from_the_spec() {
        let mut spec = RequestSpec::new("http://127.0.0.1:9/stream");
        spec.method = "put".into();
        spec.headers.push(("X-Team".into(), "a".into()));
        spec.body = Some(BodyTemplate::new(r#"{"p":"{{prompt}}","u":{{user}}}"#).unwrap());
        let prepared = Prepared::new(spec, "text/event-stream").unwrap();
        let r = prepared.request(&TemplateRequest {
            prompt: Arc::from("hi"),
            seq: 1,
            user: Some(4),
        });
        assert_eq!(r.method(), Method::PUT);
        assert_eq!(r.headers()["x-team"], "a");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(&r.body()[..], br#"{"p":"hi","u":4}"#);
        let mut bad = RequestSpec::new("http://h/");
        bad.method = "NO PE".into();
        assert!(matches!(
            Prepared::new(bad, "*/*"),
            Err(SpecError::InvalidMethod(_))
        ));
        assert!(matches!(
            Prepared::new(RequestSpec::new("nope"), "*/*"),
            Err(SpecError::Http(_))
        ));
    }
}
