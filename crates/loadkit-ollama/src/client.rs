//! `OllamaClient`: sends one `/api/chat` or `/api/generate` request, marks every content line,
//! records the server's final statistics, and classifies failures; plus the `/api/tags` check.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use loadkit_core::prompt::ChatPrompt;
use loadkit_core::{Client, Probe, RequestError};
use loadkit_http::{HttpClient, HttpConfig, ResponseBody};
use loadkit_sse::NdjsonDecoder;
use serde::Serialize;

use crate::parse::{self, Finals};

/// Which Ollama endpoint to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OllamaEndpoint {
    /// `/api/chat`: `messages` in, `message.content` out.
    #[default]
    Chat,
    /// `/api/generate`: `prompt` (and `system`) in, `response` out.
    Generate,
}

impl OllamaEndpoint {
    /// The path appended to a base URL.
    pub fn path(self) -> &'static str {
        match self {
            OllamaEndpoint::Chat => "/api/chat",
            OllamaEndpoint::Generate => "/api/generate",
        }
    }
}

/// Everything an [`OllamaClient`] needs.
///
/// `url` is the server's base URL as Ollama clients take it (`http://localhost:11434`), to
/// which the endpoint path is appended, or the full endpoint URL (ending in `/api/chat` or
/// `/api/generate`).
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaConfig {
    /// Base URL or full endpoint URL.
    pub url: String,
    /// Which endpoint.
    pub endpoint: OllamaEndpoint,
    /// The model (required by Ollama).
    pub model: String,
    /// Ask for an NDJSON stream (`"stream": true`). Default `true`.
    pub stream: bool,
    /// `options.num_predict`: the most tokens to generate.
    pub num_predict: Option<u32>,
    /// `options.temperature`.
    pub temperature: Option<f64>,
    /// `options.seed`.
    pub seed: Option<u64>,
    /// `options.num_ctx`: the context window the model is loaded with.
    pub num_ctx: Option<u32>,
    /// `keep_alive` (e.g. `5m`, `0`, `-1`): how long the model stays loaded after the request.
    pub keep_alive: Option<String>,
    /// A request whose `load_duration` exceeds this paid a cold model load. Default 500 ms.
    pub cold_load_threshold: Duration,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Timeouts, pooling and size limits.
    pub http: HttpConfig,
}

impl OllamaConfig {
    /// A streaming chat configuration for `url` and `model`, every other setting at its default.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            endpoint: OllamaEndpoint::Chat,
            model: model.into(),
            stream: true,
            num_predict: None,
            temperature: None,
            seed: None,
            num_ctx: None,
            keep_alive: None,
            cold_load_threshold: Duration::from_millis(500),
            headers: Vec::new(),
            http: HttpConfig::default(),
        }
    }

    /// `(endpoint URL, base URL)`.
    ///
    /// ```
    /// use loadkit_ollama::{OllamaConfig, OllamaEndpoint};
    ///
    /// let mut c = OllamaConfig::new("http://localhost:11434", "llama3");
    /// assert_eq!(c.urls().unwrap().0, "http://localhost:11434/api/chat");
    /// c.endpoint = OllamaEndpoint::Generate;
    /// c.url = "http://h:1/proxy/api/generate".into();
    /// assert_eq!(c.urls().unwrap(), ("http://h:1/proxy/api/generate".into(), "http://h:1/proxy".into()));
    /// ```
    pub fn urls(&self) -> Result<(String, String), OllamaConfigError> {
        let uri = loadkit_http::parse_url(&self.url)?;
        let path = uri.path().trim_end_matches('/');
        let other = match self.endpoint {
            OllamaEndpoint::Chat => OllamaEndpoint::Generate,
            OllamaEndpoint::Generate => OllamaEndpoint::Chat,
        };
        if path.ends_with(other.path()) {
            return Err(OllamaConfigError::EndpointMismatch {
                url: self.url.clone(),
                endpoint: self.endpoint.path(),
            });
        }
        let base_path = path.strip_suffix(self.endpoint.path()).unwrap_or(path);
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri.authority().map_or("", |a| a.as_str());
        let base = format!("{scheme}://{authority}{base_path}");
        let endpoint = format!("{base}{}", self.endpoint.path());
        Ok((endpoint, base))
    }
}

/// The configuration cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OllamaConfigError {
    /// The URL or an HTTP setting is unusable.
    #[error(transparent)]
    Http(#[from] loadkit_http::HttpConfigError),
    /// A full endpoint URL names the other endpoint.
    #[error("the url {url:?} is not a {endpoint} endpoint (use the base url, e.g. http://localhost:11434)")]
    EndpointMismatch {
        /// The URL as given.
        url: String,
        /// The configured endpoint's path.
        endpoint: &'static str,
    },
    /// No model is configured.
    #[error("ollama needs a model name (e.g. llama3.2)")]
    NoModel,
    /// A header name or value is not valid HTTP.
    #[error(transparent)]
    InvalidHeader(#[from] loadkit_http::HeaderError),
    /// The temperature is negative or not a number.
    #[error("invalid temperature {0}: it must be a finite number >= 0")]
    InvalidTemperature(f64),
}

/// The `/api/tags` check failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The server could not be asked.
    #[error("GET /api/tags failed: {0}")]
    Request(RequestError),
    /// The answer was not a model list.
    #[error("GET /api/tags did not return a model list")]
    NotOllama,
    /// The model is not pulled on the server.
    #[error("model {model:?} is not pulled on the server (available: {available}); run `ollama pull {model}`")]
    ModelNotPulled {
        /// The configured model.
        model: String,
        /// The models the server has, comma-separated.
        available: String,
    },
}

/// One request: an optional system prompt and the user prompt (the shared
/// [`ChatPrompt`](loadkit_core::prompt::ChatPrompt)).
pub type OllamaRequest = ChatPrompt;

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize, Default)]
struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    num_predict: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_ctx: Option<u32>,
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<ChatMessage<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    stream: bool,
    options: &'a Options,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_alive: Option<&'a str>,
}

/// An Ollama native API client.
///
/// - A **chunk** is an NDJSON line with non-empty `message.content` / `response` (or
///   `thinking`, flagged as reasoning, or `tool_calls`); the final `done: true` line and empty
///   lines are not content.
/// - **Tokens** are the server's `prompt_eval_count` / `eval_count` from the final line.
/// - The final line's `load_duration`, `prompt_eval_duration`, `eval_duration` and
///   `total_duration` are recorded as the metrics `server_load`, `server_prompt_eval`,
///   `server_eval`, `server_total`; `client_overhead` is the client-measured time to the final
///   line minus `total_duration`; `cold_load` holds the load of requests above the threshold.
/// - `{"error": ...}` (a line or the body) is a `server_error`; a stream that ends without
///   `done: true` is `truncated`; a line that is not JSON is a `protocol` error.
#[derive(Debug)]
pub struct OllamaClient {
    http: HttpClient,
    uri: Uri,
    base: String,
    headers: HeaderMap,
    endpoint: OllamaEndpoint,
    model: String,
    stream: bool,
    options: Options,
    keep_alive: Option<String>,
    finals: Finals,
    max_event_size: usize,
    max_body_size: usize,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("num_predict", &self.num_predict)
            .field("num_ctx", &self.num_ctx)
            .finish_non_exhaustive()
    }
}

impl OllamaClient {
    /// A client for `config`.
    pub fn new(config: OllamaConfig) -> Result<Self, OllamaConfigError> {
        if config.model.trim().is_empty() {
            return Err(OllamaConfigError::NoModel);
        }
        if let Some(t) = config.temperature {
            if !t.is_finite() || t < 0.0 {
                return Err(OllamaConfigError::InvalidTemperature(t));
            }
        }
        let (endpoint_url, base) = config.urls()?;
        let uri = loadkit_http::parse_url(&endpoint_url)?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/x-ndjson, application/json"),
        );
        loadkit_http::insert_headers(&config.headers, &mut headers)?;
        Ok(Self {
            http: HttpClient::new(config.http.clone())?,
            uri,
            base,
            headers,
            endpoint: config.endpoint,
            model: config.model,
            stream: config.stream,
            options: Options {
                num_predict: config.num_predict,
                temperature: config.temperature,
                seed: config.seed,
                num_ctx: config.num_ctx,
            },
            keep_alive: config.keep_alive,
            finals: Finals {
                cold_load_threshold: config.cold_load_threshold,
            },
            max_event_size: config.http.max_event_size,
            max_body_size: config.http.max_body_size,
        })
    }

    /// The URL requests go to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request body for `request`, as JSON.
    pub fn body(&self, request: &OllamaRequest) -> Vec<u8> {
        let (messages, prompt, system) = match self.endpoint {
            OllamaEndpoint::Chat => {
                let mut messages = Vec::with_capacity(2);
                if let Some(system) = &request.system {
                    messages.push(ChatMessage {
                        role: "system",
                        content: system,
                    });
                }
                messages.push(ChatMessage {
                    role: "user",
                    content: &request.prompt,
                });
                (Some(messages), None, None)
            }
            OllamaEndpoint::Generate => (None, Some(&*request.prompt), request.system.as_deref()),
        };
        let body = Body {
            model: &self.model,
            messages,
            prompt,
            system,
            stream: self.stream,
            options: &self.options,
            keep_alive: self.keep_alive.as_deref(),
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Asks `GET /api/tags` whether the server is up and has the model pulled.
    pub async fn check_model(&self) -> Result<Vec<String>, HealthError> {
        let uri: Uri = format!("{}/api/tags", self.base)
            .parse()
            .map_err(|_| HealthError::NotOllama)?;
        let mut request = http::Request::new(Bytes::new());
        *request.uri_mut() = uri;
        let mut probe = Probe::standalone();
        let response = self
            .http
            .send(request, &mut probe)
            .await
            .map_err(HealthError::Request)?;
        let status = response.status.as_u16();
        let body = response
            .body
            .collect(self.max_body_size, &mut probe)
            .await
            .map_err(HealthError::Request)?;
        if !(200..300).contains(&status) {
            return Err(HealthError::Request(RequestError::http_status(
                status,
                &String::from_utf8_lossy(&body),
            )));
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| HealthError::NotOllama)?;
        let models: Vec<String> = value
            .get("models")
            .and_then(serde_json::Value::as_array)
            .ok_or(HealthError::NotOllama)?
            .iter()
            .filter_map(|m| m.get("name").or_else(|| m.get("model")))
            .filter_map(serde_json::Value::as_str)
            .map(str::to_owned)
            .collect();
        let want = self.model.strip_suffix(":latest").unwrap_or(&self.model);
        let pulled = models
            .iter()
            .any(|m| m == &self.model || m.strip_suffix(":latest").unwrap_or(m) == want);
        if !pulled {
            return Err(HealthError::ModelNotPulled {
                model: self.model.clone(),
                available: if models.is_empty() {
                    "none".to_owned()
                } else {
                    models.join(", ")
                },
            });
        }
        Ok(models)
    }

    async fn read_stream(
        &self,
        mut body: ResponseBody,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let mut lines = NdjsonDecoder::new(self.max_event_size);
        while let Some(bytes) = body.chunk(probe).await? {
            lines.push(&bytes);
            while let Some(line) = lines.next_line()? {
                if parse::line(line, self.finals, probe)? {
                    // The request ends at the done line; draining for reuse is off the clock.
                    probe.mark_end();
                    body.finish().await;
                    return Ok(());
                }
            }
        }
        if let Some(line) = lines.finish() {
            if parse::line(line, self.finals, probe)? {
                return Ok(());
            }
        }
        Err(RequestError::truncated("stream ended before the done line"))
    }
}

impl Client for OllamaClient {
    type Request = OllamaRequest;
    type Session = ();

    async fn call(
        &self,
        _: &mut (),
        request: OllamaRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let body = self.body(&request);
        drop(request);
        let mut http = http::Request::new(Bytes::from(body));
        *http.method_mut() = Method::POST;
        *http.uri_mut() = self.uri.clone();
        *http.headers_mut() = self.headers.clone();
        let response = self.http.send(http, probe).await?;
        if !response.status.is_success() {
            return Err(response.error(probe).await);
        }
        if !self.stream {
            let text = response.body.collect(self.max_body_size, probe).await?;
            return parse::whole(&text, self.finals, probe);
        }
        self.read_stream(response.body, probe).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn bodies() {
        let mut config = OllamaConfig::new("http://127.0.0.1:9", "m");
        config.num_predict = Some(8);
        config.num_ctx = Some(4096);
        config.keep_alive = Some("5m".into());
        config.seed = Some(1);
        let chat = OllamaClient::new(config.clone()).unwrap();
        let request = OllamaRequest {
            system: Some(Arc::from("sys")),
            prompt: Arc::from("hi \"x\""),
        };
        let v: serde_json::Value = serde_json::from_slice(&chat.body(&request)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"model":"m","messages":[{"role":"system","content":"sys"},{"role":"user","content":"hi \"x\""}],
                "stream":true,"options":{"num_predict":8,"seed":1,"num_ctx":4096},"keep_alive":"5m"})
        );
        config.endpoint = OllamaEndpoint::Generate;
        config.stream = false;
        let generate = OllamaClient::new(config).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&generate.body(&request)).unwrap();
        assert_eq!(v["prompt"], "hi \"x\"");
        assert_eq!(v["system"], "sys");
        assert_eq!(v["stream"], false);
        assert_eq!(generate.uri().path(), "/api/generate");
    }

    #[test]
    fn config_errors() {
        let mut c = OllamaConfig::new("http://h:1/api/generate", "m");
        assert!(matches!(
            OllamaClient::new(c.clone()),
            Err(OllamaConfigError::EndpointMismatch { .. })
        ));
        c.url = "http://h:1".into();
        c.model = " ".into();
        assert_eq!(
            OllamaClient::new(c.clone()).unwrap_err(),
            OllamaConfigError::NoModel
        );
        c.model = "m".into();
        c.url = "h:1".into();
        assert!(matches!(
            OllamaClient::new(c),
            Err(OllamaConfigError::Http(_))
        ));
    }
}
