//! `openai-chat` and `openai-completions` as a front end registers them ([`OPENAI`]): options
//! (streaming, usage, tools, forced lengths), building from the shared settings, the `tools`
//! report section, and the simulator.

use std::sync::Arc;

use loadkit_core::protocol::{
    Launch, OptionSpec, Options, Prepared, Protocol, ProtocolName, Section, Settings, SetupError,
    Value,
};
use loadkit_core::RequestCtx;
use loadkit_http::protocol::{http_config, tcp_preflight};

use crate::{
    Endpoint, OpenAiClient, OpenAiConfig, OpenAiRequest, SpeechClient, SpeechConfig, SpeechFormat,
    SpeechRequest, ToolReport,
};

/// `--protocol openai-chat` and `--protocol openai-completions`.
pub static OPENAI: OpenAi = OpenAi;

/// The OpenAI-compatible protocols.
#[derive(Debug)]
pub struct OpenAi;

const CHAT: &str = "openai-chat";
const COMPLETIONS: &str = "openai-completions";

/// The model name sent to the built-in simulator when none is given.
pub const SIM_MODEL: &str = "loadkit-sim";

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::switch(
        "no-stream",
        "Send non-streaming requests (\"stream\": false)",
    ),
    OptionSpec::switch(
        "no-usage-request",
        "Do not send stream_options.include_usage (for servers that reject it)",
    ),
    OptionSpec::switch(
        "ignore-eos",
        "Send \"ignore_eos\": true so the model writes max_tokens tokens (vLLM, llama.cpp)",
    ),
    OptionSpec::value(
        "tools",
        "FILE",
        "Tool definitions (a JSON array of OpenAI tools); tool calls are answered with \
         deterministic fake results and the model is asked again",
    )
    .only(&[CHAT]),
    OptionSpec::value(
        "max-tool-rounds",
        "N",
        "With --tools: the most tool rounds per conversation",
    )
    .default("4")
    .only(&[CHAT]),
];

impl Protocol for OpenAi {
    fn names(&self) -> &'static [ProtocolName] {
        &[
            ProtocolName {
                name: CHAT,
                about: "OpenAI-compatible POST /v1/chat/completions",
            },
            ProtocolName {
                name: COMPLETIONS,
                about: "OpenAI-compatible POST /v1/completions",
            },
        ]
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn build(&self, s: &Settings, o: &Options) -> Result<Box<dyn Launch>, SetupError> {
        let stream = !o.flag("no-stream");
        let config = OpenAiConfig {
            url: s.url.clone(),
            endpoint: if s.protocol == COMPLETIONS {
                Endpoint::Completions
            } else {
                Endpoint::Chat
            },
            model: s
                .model
                .clone()
                .or_else(|| s.simulated.then(|| SIM_MODEL.to_owned())),
            max_tokens: Some(s.max_tokens),
            temperature: s.temperature,
            seed: Some(s.seed),
            stream,
            include_usage: !o.flag("no-usage-request"),
            api_key: s.api_key.clone(),
            headers: s.headers.clone(),
            http: http_config(s),
        };
        let target = config
            .endpoint_url()
            .map_err(|e| SetupError::caused("invalid --url", e))?;
        let mut client =
            OpenAiClient::new(config).map_err(|e| SetupError::caused("invalid --url", e))?;
        let mut extra = serde_json::Map::new();
        if let Some(n) = s.min_tokens {
            extra.insert("min_tokens".to_owned(), n.into());
        }
        if o.flag("ignore-eos") {
            extra.insert("ignore_eos".to_owned(), true.into());
        }
        if !extra.is_empty() {
            client = client
                .with_extra_body(extra)
                .map_err(|e| SetupError::caused("extra body fields", e))?;
        }
        let max_rounds = o.parse::<u32>("max-tool-rounds")?.unwrap_or(4);
        if let Some(path) = o.get("tools") {
            if !stream {
                return Err(SetupError::new(
                    "--tools needs streaming (drop --no-stream)",
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| SetupError::caused(format!("cannot read --tools {path}"), e))?;
            let tools: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| SetupError::caused(format!("--tools {path} is not valid JSON"), e))?;
            client = client
                .with_tools(tools, max_rounds)
                .map_err(|e| SetupError::caused(format!("--tools {path}"), e))?;
        }
        let prompts = Arc::new(s.prompts.clone());
        let system = s.system_prompt.clone();
        let source = move |ctx: &RequestCtx| OpenAiRequest {
            system: system.clone(),
            prompt: prompts.prompt(ctx.seq),
        };
        let mut launch = Prepared::new(client, source, target.clone())
            .with_settings(vec![
                ("stream", Value::from(stream)),
                ("ignore_eos", Value::from(o.flag("ignore-eos"))),
            ])
            .with_preflight(tcp_preflight(target, http_config(s)));
        if o.get("tools").is_some() {
            launch = launch.with_sections(move |result| {
                vec![tools_section(
                    &ToolReport::from_stats(&result.stats),
                    max_rounds,
                )]
            });
        }
        Ok(Box::new(launch))
    }

    #[cfg(feature = "simulator")]
    fn simulate(
        &self,
        _: &str,
        listener: std::net::TcpListener,
        script: &loadkit_core::protocol::SimScript,
    ) -> Option<Box<dyn loadkit_core::protocol::Simulator>> {
        use loadkit_http::protocol::sim::{transport, Running};
        use loadkit_testbed::openai::SimConfig;
        let listener = tokio::net::TcpListener::from_std(listener).ok()?;
        let server = loadkit_testbed::openai::serve_on(
            listener,
            SimConfig {
                ttft: script.ttft,
                itl: script.itl,
                output_tokens: script.tokens,
                usage: script.usage,
                transport: transport(script),
                faults: sim_fault_rules(&script.faults),
                slots: script.slots,
                ..SimConfig::default()
            },
        );
        Some(Box::new(Running {
            url: server.base_url(),
            stop: Box::new(move || Box::pin(server.shutdown())),
        }))
    }

    #[cfg(feature = "simulator")]
    fn sim_faults(&self, _: &str) -> &'static [&'static str] {
        SIM_FAULTS
    }

    #[cfg(feature = "simulator")]
    fn sim_slots(&self, _: &str) -> bool {
        true
    }
}

/// The faults the OpenAI simulator injects by name (docs/faults.md), in `cycle` order.
#[cfg(feature = "simulator")]
const SIM_FAULTS: &[&str] = &[
    "refused",
    "reset",
    "truncated",
    "malformed-json",
    "invalid-utf8",
    "oversized",
    "rate-limited",
    "overloaded",
    "slow-headers",
    "stall",
    "stream-error",
    "garbage-status",
    "bad-chunking",
    "linger",
];

/// How long `refused` stops the simulator listening.
#[cfg(feature = "simulator")]
const REFUSED_FOR: std::time::Duration = std::time::Duration::from_millis(100);

/// The testbed's fault rules for a plan of [`SIM_FAULTS`] names.
#[cfg(feature = "simulator")]
fn sim_fault_rules(
    plan: &loadkit_core::protocol::FaultPlan,
) -> Vec<loadkit_testbed::openai::FaultRule> {
    use loadkit_testbed::openai::{Fault, FaultRule, Trigger};
    let after_tokens = 2;
    plan.turns()
        .filter_map(|(slot, of, name)| {
            let fault = match name {
                "refused" => Fault::Refuse {
                    duration: REFUSED_FOR,
                },
                "reset" => Fault::Reset { after_tokens },
                "truncated" => Fault::Truncate { after_tokens },
                "malformed-json" => Fault::MalformedChunk { after_tokens },
                "invalid-utf8" => Fault::InvalidUtf8 { after_tokens },
                "oversized" => Fault::Oversized {
                    after_tokens,
                    bytes: 2 * loadkit_http::DEFAULT_MAX_EVENT_SIZE,
                },
                "rate-limited" => Fault::rate_limited(1),
                "overloaded" => Fault::Status {
                    status: 503,
                    body: "Too many concurrent requests".to_owned(),
                    retry_after: Some(1),
                },
                "slow-headers" => Fault::SlowHeaders(plan.delay),
                "stall" => Fault::Stall {
                    after_tokens,
                    duration: plan.delay,
                },
                "stream-error" => Fault::StreamError {
                    after_tokens,
                    message: "simulated in-stream error".to_owned(),
                },
                "garbage-status" => Fault::GarbageStatus,
                "bad-chunking" => Fault::BadChunking { after_tokens },
                "linger" => Fault::Linger(plan.delay),
                _ => return None,
            };
            Some(FaultRule {
                fault,
                when: Trigger::Cycle {
                    every: plan.every,
                    slot,
                    of,
                },
            })
        })
        .collect()
}

/// The report's `tools` section (docs/metrics.md, "Tool calling").
pub fn tools_section(t: &ToolReport, max_tool_rounds: u32) -> Section {
    Section {
        name: "tools",
        fields: vec![
            ("conversations", t.conversations.into()),
            ("tool_rounds", t.tool_rounds.into()),
            ("mean_tool_rounds", t.mean_tool_rounds().into()),
            ("limit_reached", t.limit_reached.into()),
            ("max_tool_rounds", max_tool_rounds.into()),
            (
                "conversations_by_tool_rounds",
                Value::Map(
                    t.by_tool_rounds
                        .iter()
                        .map(|(rounds, n)| (rounds.to_string(), Value::from(*n)))
                        .collect(),
                ),
            ),
        ],
        summary: Vec::new(),
    }
}

/// `--protocol tts-http`: OpenAI-compatible text to speech.
pub static TTS_HTTP: TtsHttp = TtsHttp;

/// OpenAI-compatible `POST /v1/audio/speech`.
#[derive(Debug)]
pub struct TtsHttp;

const TTS_HTTP_NAME: &str = "tts-http";

/// The voice sent when none is given, by model (the models people load-test most).
const SPEECH_VOICES: &[(&str, &str)] = &[
    ("kokoro", "af_heart"),
    ("tts-1", "alloy"),
    ("tts-1-hd", "alloy"),
    ("gpt-4o-mini-tts", "alloy"),
    ("piper", "en_US-lessac-medium"),
    ("espeak-ng", "en"),
];

const SPEECH_OPTIONS: &[OptionSpec] = &[
    OptionSpec::value(
        "voice",
        "VOICE",
        "The voice [default: the model's from the built-in table: kokoro af_heart, tts-1 alloy, \
         piper en_US-lessac-medium, espeak-ng en, ...]",
    ),
    OptionSpec::value(
        "response-format",
        "FORMAT",
        "wav (duration from its header) or pcm (16-bit mono at x-sample-rate or --sample-rate)",
    )
    .default("wav"),
    OptionSpec::value(
        "speed",
        "X",
        "speed sent with each request (omitted by default)",
    ),
    OptionSpec::value(
        "sample-rate",
        "HZ",
        "Samples per second of raw pcm audio (16-bit mono) when the server sends no x-sample-rate",
    )
    .default("24000"),
    loadkit_http::protocol::HEALTH_PATH,
    loadkit_http::protocol::NO_HEALTH_CHECK,
];

impl Protocol for TtsHttp {
    fn names(&self) -> &'static [ProtocolName] {
        &[ProtocolName {
            name: TTS_HTTP_NAME,
            about: "OpenAI-compatible text to speech, POST /v1/audio/speech (ttfa, rtf, audio \
                    duration from the samples)",
        }]
    }

    fn options(&self) -> &'static [OptionSpec] {
        SPEECH_OPTIONS
    }

    fn build(&self, s: &Settings, o: &Options) -> Result<Box<dyn Launch>, SetupError> {
        let model = s.model.clone().unwrap_or_else(|| "kokoro".to_owned());
        let voice = match o.get("voice") {
            Some(v) => v.to_owned(),
            None => SPEECH_VOICES
                .iter()
                .find(|(m, _)| m.eq_ignore_ascii_case(&model))
                .map(|(_, v)| (*v).to_owned())
                .ok_or_else(|| {
                    let known: Vec<&str> = SPEECH_VOICES.iter().map(|(m, _)| *m).collect();
                    SetupError::new(format!(
                        "--protocol tts-http: no default voice for model '{model}' (known: {}); give --voice",
                        known.join(", ")
                    ))
                })?,
        };
        let format = match o.get("response-format").unwrap_or("wav") {
            "wav" => SpeechFormat::Wav,
            "pcm" => SpeechFormat::Pcm,
            other => {
                return Err(SetupError::new(format!(
                    "invalid value '{other}' for --response-format (wav or pcm: the formats whose \
                     duration loadkit can count)"
                )))
            }
        };
        let config = SpeechConfig {
            url: s.url.clone(),
            model: model.clone(),
            voice: voice.clone(),
            format,
            speed: o.parse::<f64>("speed")?,
            sample_rate: o.parse::<u32>("sample-rate")?.unwrap_or(24_000),
            api_key: s.api_key.clone(),
            headers: s.headers.clone(),
            http: http_config(s),
        };
        let client =
            SpeechClient::new(config).map_err(|e| SetupError::caused("--protocol tts-http", e))?;
        let target = client.uri().to_string();
        let prompts = Arc::new(s.prompts.clone());
        let source = move |ctx: &RequestCtx| SpeechRequest {
            input: prompts.prompt(ctx.seq),
        };
        let settings = vec![
            ("model", Value::from(model)),
            ("voice", Value::from(voice)),
            ("response_format", Value::from(format.name())),
        ];
        let health = loadkit_http::protocol::health_preflight(
            target.clone(),
            (!o.flag("no-health-check"))
                .then(|| o.get("health-path").unwrap_or("/health").to_owned()),
            s.connect_timeout,
            loadkit_http::protocol::tls_options(s),
        );
        Ok(Box::new(
            Prepared::new(client, source, target)
                .with_settings(settings)
                .with_preflight(health)
                .with_sections(|result| {
                    let ms = result
                        .stats
                        .tallies
                        .get(crate::speech::metric::AUDIO_MS)
                        .copied()
                        .unwrap_or(0);
                    vec![Section::new(
                        "tts",
                        vec![("audio_s_total", (ms as f64 / 1e3).into())],
                    )]
                }),
        ))
    }

    #[cfg(feature = "simulator")]
    fn simulate(
        &self,
        _: &str,
        listener: std::net::TcpListener,
        _: &loadkit_core::protocol::SimScript,
    ) -> Option<Box<dyn loadkit_core::protocol::Simulator>> {
        use loadkit_http::protocol::sim::Running;
        use loadkit_testbed::tts_http::TtsHttpSimConfig;
        let listener = tokio::net::TcpListener::from_std(listener).ok()?;
        let server = loadkit_testbed::tts_http::serve_on(listener, TtsHttpSimConfig::default());
        Some(Box::new(Running {
            url: server.base_url(),
            stop: Box::new(move || Box::pin(server.shutdown())),
        }))
    }
}
