//! `OpenAiClient`: sends one chat or completions request and marks its milestones: first byte,
//! every content chunk, usage, and a classified error when it fails.

use std::fmt;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use loadkit_core::prompt::ChatPrompt;
use loadkit_core::{Client, Probe, RequestError};
use loadkit_http::{HttpClient, ResponseBody};
use loadkit_sse::SseDecoder;
use serde::Serialize;

use crate::config::{Endpoint, OpenAiConfig, OpenAiConfigError};
use crate::parse::{full_response, StreamParser};
use crate::tools::Tools;

/// One request: an optional system prompt and the user prompt (the shared
/// [`ChatPrompt`](loadkit_core::prompt::ChatPrompt)).
///
/// Chat sends them as a `system` and a `user` message; completions sends
/// `system + "\n\n" + prompt` as the `prompt`.
pub type OpenAiRequest = ChatPrompt;

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The request body; `messages` for chat, `prompt` for completions.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [ChatMessage<'a>]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

/// Fields the client writes itself, which an extra body may not override.
const RESERVED: [&str; 9] = [
    "model",
    "messages",
    "prompt",
    "stream",
    "stream_options",
    "max_tokens",
    "temperature",
    "seed",
    "n",
];

/// An OpenAI-compatible chat / completions client (vLLM, llama.cpp, TGI, LiteLLM, OpenAI, ...).
///
/// Streaming responses are parsed as loadkit's measurement model defines: only chunks with
/// generated text (content, reasoning, tool-call fragments) count toward TTFT and ITL; role-only,
/// empty, `finish_reason`-only and usage-only chunks do not. Usage reported by the server is
/// recorded; without it, tokens are counted as content chunks.
///
/// A stream succeeds when it ends after `data: [DONE]` or after a `finish_reason` (some servers
/// omit `[DONE]`); otherwise it is `truncated`.
///
/// ```no_run
/// use loadkit_core::{schedule::FixedUsers, RequestCtx, Runner};
/// use loadkit_openai::{OpenAiClient, OpenAiConfig, OpenAiRequest};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = OpenAiConfig { model: Some("my-model".into()), ..OpenAiConfig::new("http://127.0.0.1:8000/v1") };
/// let client = OpenAiClient::new(config)?;
/// let result = Runner::builder(client, |_: &RequestCtx| OpenAiRequest::new("Say hello"))
///     .closed_loop(FixedUsers::new(8)?)
///     .requests(100)
///     .build()?
///     .run()
///     .await;
/// println!("ttft p50 {:?}", result.stats.ttft.quantile(0.5));
/// # Ok(())
/// # }
/// ```
pub struct OpenAiClient {
    pub(crate) http: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    endpoint: Endpoint,
    model: Option<String>,
    max_tokens: Option<u32>,
    temperature: f64,
    seed: Option<u64>,
    stream: bool,
    include_usage: bool,
    /// Extra body fields, pre-rendered as `,"k":v,...`.
    extra: Option<String>,
    pub(crate) max_event_size: usize,
    max_body_size: usize,
    tools: Option<Tools>,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("uri", &self.uri)
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for `config`; fails on an invalid URL, header, API key or HTTP setting.
    pub fn new(config: OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        let url = config.endpoint_url()?;
        let uri: Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| OpenAiConfigError::InvalidUrl {
                    url,
                    reason: e.to_string(),
                })?;
        if !config.temperature.is_finite() || config.temperature < 0.0 {
            return Err(OpenAiConfigError::InvalidTemperature(config.temperature));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let accept = if config.stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                .map_err(|_| OpenAiConfigError::InvalidApiKey)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        loadkit_http::insert_headers(&config.headers, &mut headers)?;
        let http = HttpClient::new(config.http.clone())?;
        Ok(Self {
            uri,
            headers,
            endpoint: config.endpoint,
            model: config.model,
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            seed: config.seed,
            stream: config.stream,
            include_usage: config.include_usage,
            extra: None,
            max_event_size: config.http.max_event_size,
            max_body_size: config.http.max_body_size,
            tools: None,
            http,
        })
    }

    /// Offers `tools` (a JSON array of OpenAI tool definitions) in every request and turns each
    /// request into a conversation: when the model answers with `tool_calls`, deterministic
    /// fake results are appended and the model is asked again, up to `max_rounds` tool rounds
    /// (at most [`MAX_TOOL_ROUNDS`](crate::MAX_TOOL_ROUNDS)). Needs a streaming chat client.
    ///
    /// The conversation is one engine request: TTFT is the first content of the first round,
    /// E2E the whole conversation, usage the sum over rounds, and each round's latency the
    /// metric `tool_round_K`; [`ToolReport::from_stats`](crate::ToolReport::from_stats) reads the
    /// rounds per conversation from the run's tallies.
    pub fn with_tools(
        mut self,
        tools: serde_json::Value,
        max_rounds: u32,
    ) -> Result<Self, OpenAiConfigError> {
        let ok = tools.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(|t| {
                    t.pointer("/function/name")
                        .and_then(serde_json::Value::as_str)
                        .is_some()
                })
        });
        if !ok {
            return Err(OpenAiConfigError::InvalidTools(
                "expected a non-empty json array of {\"type\": \"function\", \"function\": {\"name\": ...}} tools",
            ));
        }
        if max_rounds == 0 || max_rounds > crate::MAX_TOOL_ROUNDS {
            return Err(OpenAiConfigError::InvalidTools(
                "the maximum tool rounds must be from 1 to 7",
            ));
        }
        if !self.stream || self.endpoint != Endpoint::Chat {
            return Err(OpenAiConfigError::InvalidTools(
                "tool calling needs streaming chat completions",
            ));
        }
        self.tools = Some(Tools { tools, max_rounds });
        Ok(self)
    }

    /// Adds fields to every request body, e.g. `min_tokens` and `ignore_eos` (vLLM) to force an
    /// output length, or `tools`. Fields the client sets itself (`model`, `messages`, `prompt`,
    /// `stream`, `stream_options`, `max_tokens`, `temperature`, `seed`, `n`) are refused.
    pub fn with_extra_body(
        mut self,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, OpenAiConfigError> {
        if let Some(key) = fields.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(OpenAiConfigError::ReservedField(key.clone()));
        }
        let mut rendered = String::new();
        for (key, value) in &fields {
            rendered.push(',');
            rendered.push_str(&serde_json::Value::from(key.as_str()).to_string());
            rendered.push(':');
            rendered.push_str(&value.to_string());
        }
        self.extra = (!rendered.is_empty()).then_some(rendered);
        Ok(self)
    }

    /// The URL requests go to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request body for `request`, as JSON.
    pub fn body(&self, request: &OpenAiRequest) -> Vec<u8> {
        let joined;
        let pair;
        let single;
        let (messages, prompt) = match self.endpoint {
            Endpoint::Chat => {
                let user = ChatMessage {
                    role: "user",
                    content: &request.prompt,
                };
                let messages: &[ChatMessage<'_>] = match &request.system {
                    Some(system) => {
                        pair = [
                            ChatMessage {
                                role: "system",
                                content: system,
                            },
                            user,
                        ];
                        &pair
                    }
                    None => {
                        single = [user];
                        &single
                    }
                };
                (Some(messages), None)
            }
            Endpoint::Completions => match &request.system {
                Some(system) => {
                    joined = format!("{system}\n\n{}", request.prompt);
                    (None, Some(joined.as_str()))
                }
                None => (None, Some(&*request.prompt)),
            },
        };
        let body = Body {
            model: self.model.as_deref(),
            messages,
            prompt,
            stream: self.stream,
            stream_options: (self.stream && self.include_usage).then_some(StreamOptions {
                include_usage: true,
            }),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            seed: self.seed,
        };
        // Serializing these plain types cannot fail.
        let mut json = serde_json::to_vec(&body).unwrap_or_default();
        if let Some(extra) = &self.extra {
            json.pop();
            json.extend_from_slice(extra.as_bytes());
            json.push(b'}');
        }
        json
    }

    pub(crate) fn http_request(&self, body: Vec<u8>) -> http::Request<Bytes> {
        let mut request = http::Request::new(Bytes::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }

    async fn read_stream(
        &self,
        mut body: ResponseBody,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let mut sse = SseDecoder::new(self.max_event_size);
        let mut parser = StreamParser::default();
        while let Some(bytes) = body.chunk(probe).await? {
            sse.push(&bytes);
            while let Some(event) = sse.next_event()? {
                parser.event(&event, probe)?;
            }
            if parser.is_done() {
                // The request ends at the end marker; draining for reuse is off the clock.
                probe.mark_end();
                body.finish().await;
                return Ok(());
            }
        }
        if let Some(event) = sse.finish() {
            parser.event(&event, probe)?;
        }
        parser.end()
    }
}

impl Client for OpenAiClient {
    type Request = OpenAiRequest;
    type Session = ();

    async fn call(
        &self,
        _: &mut (),
        request: OpenAiRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        if let Some(tools) = &self.tools {
            return self.converse(tools, request, probe).await;
        }
        let body = self.body(&request);
        drop(request);
        let response = self.http.send(self.http_request(body), probe).await?;
        if !response.status.is_success() {
            return Err(response.error(probe).await);
        }
        if !self.stream {
            let text = response.body.collect(self.max_body_size, probe).await?;
            return full_response(&text, probe);
        }
        response.expect_event_stream()?;
        self.read_stream(response.body, probe).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn client(endpoint: Endpoint) -> OpenAiClient {
        OpenAiClient::new(OpenAiConfig {
            endpoint,
            model: Some("m".into()),
            max_tokens: Some(16),
            seed: Some(1),
            ..OpenAiConfig::new("http://127.0.0.1:9/v1")
        })
        .unwrap()
    }

    fn body(client: &OpenAiClient, system: Option<&str>) -> serde_json::Value {
        let request = OpenAiRequest {
            system: system.map(Arc::from),
            prompt: Arc::from("Hi \"you\""),
        };
        serde_json::from_slice(&client.body(&request)).unwrap()
    }

    /// Every user's task holds one request's future: its size is per-stream memory (the 10,000
    /// open streams budget). A rare path (a retry's handshake) must be boxed, not inlined.
    #[test]
    fn a_request_future_stays_small() {
        let client = client(Endpoint::Chat);
        let mut probe = Probe::standalone();
        let mut session = ();
        let call = client.call(&mut session, OpenAiRequest::new("hi"), &mut probe);
        let size = std::mem::size_of_val(&call);
        assert!(size <= 3 * 1024, "the call future is {size} bytes");
    }

    #[test]
    fn chat_bodies() {
        let chat = client(Endpoint::Chat);
        assert_eq!(
            body(&chat, Some("Be brief")),
            serde_json::json!({
                "model": "m",
                "messages": [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi \"you\""}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 16,
                "temperature": 0.0,
                "seed": 1,
            })
        );
        let extra = serde_json::json!({"min_tokens": 16, "ignore_eos": true});
        let chat = chat
            .with_extra_body(extra.as_object().unwrap().clone())
            .unwrap();
        let b = body(&chat, None);
        assert_eq!(
            (b["min_tokens"].as_u64(), b["ignore_eos"].as_bool()),
            (Some(16), Some(true))
        );
        assert_eq!(b["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn completions_bodies() {
        let mut config = OpenAiConfig::new("http://127.0.0.1:9/v1");
        config.endpoint = Endpoint::Completions;
        config.stream = false;
        let completions = OpenAiClient::new(config).unwrap();
        assert_eq!(
            body(&completions, Some("Sys")),
            serde_json::json!({"prompt": "Sys\n\nHi \"you\"", "stream": false, "temperature": 0.0})
        );
    }

    #[test]
    fn invalid_settings_are_typed_errors() {
        let bad = |f: fn(&mut OpenAiConfig)| {
            let mut config = OpenAiConfig::new("http://127.0.0.1:9/v1");
            f(&mut config);
            OpenAiClient::new(config).unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.url = "nope".into()),
            OpenAiConfigError::InvalidUrl { .. }
        ));
        assert!(matches!(
            bad(|c| c.headers.push(("bad name".into(), "x".into()))),
            OpenAiConfigError::InvalidHeader { .. }
        ));
        assert!(matches!(
            bad(|c| c.headers.push(("x-ok".into(), "a\nb".into()))),
            OpenAiConfigError::InvalidHeader { .. }
        ));
        assert_eq!(
            bad(|c| c.api_key = Some("a\u{7f}b".into())),
            OpenAiConfigError::InvalidApiKey
        );
        assert!(matches!(
            bad(|c| c.temperature = f64::NAN),
            OpenAiConfigError::InvalidTemperature(_)
        ));
        assert!(matches!(
            bad(|c| c.http.idle_timeout = Duration::ZERO),
            OpenAiConfigError::Http(_)
        ));
        let reserved = serde_json::json!({"stream": false});
        let e = client(Endpoint::Chat)
            .with_extra_body(reserved.as_object().unwrap().clone())
            .unwrap_err();
        assert_eq!(e, OpenAiConfigError::ReservedField("stream".into()));
    }
}
