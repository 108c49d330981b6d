//! `ollama-chat` and `ollama-generate` as a front end registers them ([`OLLAMA`]): options,
//! building from the shared settings, the pre-flight that asks `/api/tags` for the model, the
//! `ollama` report section, and the simulator.

use std::sync::Arc;

use loadkit_core::protocol::{
    Launch, OptionSpec, Options, PreflightError, Prepared, Protocol, ProtocolName, Section,
    Settings, SetupError,
};
use loadkit_core::RequestCtx;
use loadkit_http::protocol::http_config;

use crate::{metric, OllamaClient, OllamaConfig, OllamaEndpoint, OllamaRequest};

/// `--protocol ollama-chat` and `--protocol ollama-generate`.
pub static OLLAMA: Ollama = Ollama;

/// Ollama's native API.
#[derive(Debug)]
pub struct Ollama;

const CHAT: &str = "ollama-chat";
const GENERATE: &str = "ollama-generate";

/// The model name sent to the built-in simulator when none is given.
pub const SIM_MODEL: &str = "loadkit-sim";

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::switch(
        "no-stream",
        "Send non-streaming requests (\"stream\": false)",
    ),
    OptionSpec::value(
        "keep-alive",
        "DURATION",
        "keep_alive sent with each request (e.g. 5m, 0, -1)",
    ),
    OptionSpec::value(
        "num-ctx",
        "N",
        "options.num_ctx (the context window the model is loaded with)",
    ),
    OptionSpec::value(
        "cold-load-threshold",
        "DURATION",
        "A request whose load_duration exceeds this paid a cold model load",
    )
    .default("500ms"),
];

impl Protocol for Ollama {
    fn names(&self) -> &'static [ProtocolName] {
        &[
            ProtocolName {
                name: CHAT,
                about: "Ollama POST /api/chat (NDJSON stream)",
            },
            ProtocolName {
                name: GENERATE,
                about: "Ollama POST /api/generate (NDJSON stream)",
            },
        ]
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn build(&self, s: &Settings, o: &Options) -> Result<Box<dyn Launch>, SetupError> {
        let model =
            match (&s.model, s.simulated) {
                (Some(m), _) => m.clone(),
                (None, true) => SIM_MODEL.to_owned(),
                (None, false) => return Err(SetupError::new(
                    "--protocol ollama-* needs --model (the name of a pulled model, e.g. llama3.2)",
                )),
            };
        let mut config = OllamaConfig::new(&s.url, model);
        config.endpoint = if s.protocol == GENERATE {
            OllamaEndpoint::Generate
        } else {
            OllamaEndpoint::Chat
        };
        config.stream = !o.flag("no-stream");
        config.num_predict = Some(s.max_tokens);
        config.temperature = Some(s.temperature);
        config.seed = Some(s.seed);
        config.num_ctx = o.parse::<u32>("num-ctx")?.filter(|n| *n > 0);
        if o.is_given("num-ctx") && config.num_ctx.is_none() {
            return Err(SetupError::new("--num-ctx must be a whole number >= 1"));
        }
        config.keep_alive = o.get("keep-alive").map(str::to_owned);
        let threshold = o.duration("cold-load-threshold")?.unwrap_or_default();
        config.cold_load_threshold = threshold;
        config.headers = s.headers.clone();
        config.http = http_config(s);
        let target = config
            .urls()
            .map_err(|e| SetupError::caused("invalid --url", e))?
            .0;
        let client = OllamaClient::new(config.clone())
            .map_err(|e| SetupError::caused("invalid --url", e))?;
        let checker = Arc::new(
            OllamaClient::new(config.clone())
                .map_err(|e| SetupError::caused("invalid --url", e))?,
        );
        let prompts = Arc::new(s.prompts.clone());
        let system = s.system_prompt.clone();
        let source = move |ctx: &RequestCtx| OllamaRequest {
            system: system.clone(),
            prompt: prompts.prompt(ctx.seq),
        };
        let check_http = config.http.clone();
        let check_target = target.clone();
        Ok(Box::new(
            Prepared::new(client, source, target)
                .with_settings(vec![
                    ("stream", config.stream.into()),
                    ("keep_alive", config.keep_alive.clone().into()),
                    ("num_ctx", config.num_ctx.into()),
                ])
                .with_preflight(move || {
                    let checker = Arc::clone(&checker);
                    let target = check_target.clone();
                    let http = check_http.clone();
                    async move {
                        loadkit_http::preflight_with(&target, http)
                            .await
                            .map_err(|e| {
                                PreflightError::new(format!("target unreachable: {target}: {e}"))
                            })?;
                        checker
                            .check_model()
                            .await
                            .map(|_| ())
                            .map_err(|e| PreflightError::new(format!("{target}: {e}")))
                    }
                })
                .with_sections(move |result| {
                    let cold = result
                        .stats
                        .named
                        .get(metric::COLD_LOAD)
                        .map_or(0, |h| h.count());
                    vec![Section {
                        name: "ollama",
                        fields: vec![
                            ("cold_loads", cold.into()),
                            (
                                "cold_load_threshold_ms",
                                (threshold.as_secs_f64() * 1e3).into(),
                            ),
                        ],
                        summary: Vec::new(),
                    }]
                }),
        ))
    }

    #[cfg(feature = "simulator")]
    fn simulate(
        &self,
        _: &str,
        listener: std::net::TcpListener,
        script: &loadkit_core::protocol::SimScript,
    ) -> Option<Box<dyn loadkit_core::protocol::Simulator>> {
        use loadkit_http::protocol::sim::{transport, Running};
        use loadkit_testbed::ollama::OllamaSimConfig;
        let listener = tokio::net::TcpListener::from_std(listener).ok()?;
        let server = loadkit_testbed::ollama::serve_on(
            listener,
            OllamaSimConfig {
                ttft: script.ttft,
                itl: script.itl,
                output_tokens: script.tokens,
                transport: transport(script),
                ..OllamaSimConfig::default()
            },
        );
        Some(Box::new(Running {
            url: server.base_url(),
            stop: Box::new(move || Box::pin(server.shutdown())),
        }))
    }
}
