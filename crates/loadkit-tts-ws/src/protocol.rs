//! `tts-ws` as a front end registers it ([`TTS_WS`]): the session shape, the player, the
//! message templates and rules, the model → voice table, the health check and the simulator.

use std::sync::Arc;

use loadkit_core::audio::PcmFormat;
use loadkit_core::prompt::PromptSource;
use loadkit_core::protocol::{
    Launch, OptionSpec, Options, PreflightError, Prepared, Protocol, ProtocolName, Section,
    Settings, SetupError, Value,
};
use loadkit_core::{RequestCtx, RunResult};
use loadkit_http::protocol::{health_preflight, HEALTH_PATH, NO_HEALTH_CHECK};

use crate::{
    default_voice, metric, AudioFormat, Delivery, TextSource, TtsRequest, TtsWsClient, TtsWsConfig,
    DEFAULT_VOICES,
};

/// `--protocol tts-ws`.
pub static TTS_WS: TtsWs = TtsWs;

/// Text-to-speech over a WebSocket, one listener's document per request.
#[derive(Debug)]
pub struct TtsWs;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value("blocks", "N", "Text blocks per document (one session reads one)")
        .default("10"),
    OptionSpec::value("prefetch", "N", "Blocks requested per batch").default("8"),
    OptionSpec::value(
        "refill-below",
        "DURATION",
        "Request the next batch when less audio than this is left to play",
    )
    .default("10s"),
    OptionSpec::value(
        "voice",
        "VOICE",
        "The voice [default: the model's from the built-in table: kokoro af_heart, piper \
         en_US-lessac-medium, espeak-ng en, tts-1 alloy, ...]",
    ),
    OptionSpec::value(
        "text-file",
        "FILE",
        "Blocks' text, one block per non-empty line, read in order across sessions \
         [default: synthetic words, every block different]",
    ),
    OptionSpec::value(
        "block-words",
        "N",
        "Synthetic words per block when no --text-file or --prompt* is given",
    )
    .default("12"),
    OptionSpec::value(
        "tts-message",
        "TEMPLATE",
        "The batch message, with {{document_id}} {{model}} {{voice}} {{blocks}} {{seq}} {{user}} \
         [default: {\"type\":\"synthesize\",\"document_id\":\"{{document_id}}\",\"model\":\"{{model}}\",\
         \"voice\":\"{{voice}}\",\"blocks\":{{blocks}}}]",
    ),
    OptionSpec::value(
        "tts-block",
        "TEMPLATE",
        "One block in {{blocks}}, with {{index}} {{text}} [default: {\"index\":{{index}},\"text\":\"{{text}}\"}]",
    ),
    OptionSpec::value("status-when", "RULE", "A block status message (POINTER=VALUE)")
        .default("/type=status"),
    OptionSpec::value("done-when", "RULE", "A status message saying its block is done")
        .default("/status=done"),
    OptionSpec::value("error-when", "RULE", "A message that reports an error")
        .default("/type=error"),
    OptionSpec::value("error-text", "POINTER", "Where an error message's text is")
        .default("/message"),
    OptionSpec::value("document-at", "POINTER", "Where a message's document id is")
        .default("/document_id"),
    OptionSpec::value("index-at", "POINTER", "Where a status message's block index is")
        .default("/index"),
    OptionSpec::value(
        "duration-at",
        "POINTER",
        "Where a done message states its audio's duration in ms (checked against the samples)",
    )
    .default("/audio_duration_ms"),
    OptionSpec::value(
        "audio-in",
        "HOW",
        "binary: a binary frame after each done message; base64: in the done message at --audio-at",
    )
    .default("binary"),
    OptionSpec::value("audio-at", "POINTER", "Where base64 audio is in a done message")
        .default("/audio"),
    OptionSpec::value(
        "audio-format",
        "FORMAT",
        "wav (duration from its header) or pcm (16-bit mono at --sample-rate)",
    )
    .default("wav")
    .only(&["tts-ws"]),
    OptionSpec::value(
        "sample-rate",
        "HZ",
        "Samples per second of raw pcm audio (16-bit mono)",
    )
    .default("24000")
    .only(&["tts-ws"]),
    HEALTH_PATH,
    NO_HEALTH_CHECK,
];

impl Protocol for TtsWs {
    fn names(&self) -> &'static [ProtocolName] {
        &[ProtocolName {
            name: "tts-ws",
            about: "Text-to-speech over a WebSocket: document-reader sessions with real-time \
                    playback (ttfa, block synthesis, rtf, underruns)",
        }]
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn build(&self, s: &Settings, o: &Options) -> Result<Box<dyn Launch>, SetupError> {
        let text = |long: &str| o.get(long).unwrap_or_default().to_owned();
        let positive = |long: &str, default: usize| -> Result<usize, SetupError> {
            match o.parse::<usize>(long)? {
                Some(0) => Err(SetupError::new(format!("--{long} must be at least 1"))),
                Some(n) => Ok(n),
                None => Ok(default),
            }
        };
        let mut config = TtsWsConfig::new(&s.url);
        config.headers = s.headers.clone();
        config.tls = loadkit_http::protocol::tls_options(s);
        config.model = s.model.clone().unwrap_or_else(|| "kokoro".to_owned());
        config.voice = match o.get("voice") {
            Some(voice) => voice.to_owned(),
            None => default_voice(&config.model)
                .ok_or_else(|| {
                    let known: Vec<&str> = DEFAULT_VOICES.iter().map(|(m, _)| *m).collect();
                    SetupError::new(format!(
                        "--protocol tts-ws: no default voice for model '{}' (known: {}); give --voice",
                        config.model,
                        known.join(", ")
                    ))
                })?
                .to_owned(),
        };
        config.blocks = positive("blocks", 10)?;
        config.prefetch = positive("prefetch", 8)?;
        if let Some(d) = o.duration("refill-below")? {
            config.refill_below = d;
        }
        config.message = o.get("tts-message").map(str::to_owned);
        config.block = o.get("tts-block").map(str::to_owned);
        config.status_when = text("status-when");
        config.done_when = text("done-when");
        config.error_when = text("error-when");
        config.error_text = text("error-text");
        config.document_at = text("document-at");
        config.index_at = text("index-at");
        config.duration_at = text("duration-at");
        config.audio_at = text("audio-at");
        config.delivery = match o.get("audio-in").unwrap_or("binary") {
            "binary" => Delivery::Binary,
            "base64" => Delivery::Base64,
            other => {
                return Err(SetupError::new(format!(
                    "invalid value '{other}' for --audio-in (binary or base64)"
                )))
            }
        };
        let rate = o.parse::<u32>("sample-rate")?.unwrap_or(24_000);
        config.format = match o.get("audio-format").unwrap_or("wav") {
            "wav" => AudioFormat::Wav,
            "pcm" if rate > 0 => AudioFormat::Pcm(PcmFormat::mono16(rate)),
            "pcm" => return Err(SetupError::new("--sample-rate must be positive")),
            other => {
                return Err(SetupError::new(format!(
                    "invalid value '{other}' for --audio-format (wav or pcm)"
                )))
            }
        };
        config.text = match o.get("text-file") {
            Some(path) => {
                let body = std::fs::read_to_string(path).map_err(|e| {
                    SetupError::new(format!("--text-file {path}: cannot read it: {e}"))
                })?;
                let lines: Vec<String> = body
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                if lines.is_empty() {
                    return Err(SetupError::new(format!(
                        "--text-file {path}: no non-empty line"
                    )));
                }
                TextSource::Lines(lines.into())
            }
            None if s.prompt_chosen => TextSource::Prompts(s.prompts.clone()),
            None => TextSource::Prompts(PromptSource::Words {
                words: positive("block-words", 12)?,
                seed: s.seed,
            }),
        };
        config.seed = s.seed;
        config.connect_timeout = s.connect_timeout;
        config.first_byte_timeout = s.first_byte_timeout;
        config.idle_timeout = s.idle_timeout;
        let settings = vec![
            ("model", Value::from(config.model.clone())),
            ("voice", Value::from(config.voice.clone())),
            ("blocks", Value::from(config.blocks as u64)),
            ("prefetch", Value::from(config.prefetch as u64)),
            (
                "refill_below_s",
                Value::from(config.refill_below.as_secs_f64()),
            ),
            (
                "audio_in",
                Value::from(match config.delivery {
                    Delivery::Binary => "binary",
                    Delivery::Base64 => "base64",
                }),
            ),
            (
                "audio_format",
                Value::from(match config.format {
                    AudioFormat::Wav => "wav".to_owned(),
                    AudioFormat::Pcm(f) => format!("pcm {} Hz", f.sample_rate),
                }),
            ),
        ];
        let headers = config.headers.clone();
        let tls = config.tls.clone();
        let client =
            TtsWsClient::new(config).map_err(|e| SetupError::caused("--protocol tts-ws", e))?;
        let target = client.url().to_owned();
        let health = health_preflight(
            target.clone(),
            (!o.flag("no-health-check")).then(|| text("health-path")),
            s.connect_timeout,
            loadkit_http::protocol::tls_options(s),
        );
        let check = target.clone();
        let connect_timeout = s.connect_timeout;
        let source = |ctx: &RequestCtx| TtsRequest {
            seq: ctx.seq,
            user: ctx.user,
        };
        let health = Arc::new(health);
        Ok(Box::new(
            Prepared::new(client, source, target)
                .with_settings(settings)
                .with_preflight(move || {
                    let health = Arc::clone(&health);
                    let url = check.clone();
                    let headers = headers.clone();
                    let tls = tls.clone();
                    async move {
                        health().await?;
                        loadkit_ws::preflight(&url, &headers, connect_timeout, &tls)
                            .await
                            .map_err(|e| PreflightError::new(format!("target unreachable: {e}")))
                    }
                })
                .with_sections(|result| vec![section(result)]),
        ))
    }

    #[cfg(feature = "simulator")]
    fn simulate(
        &self,
        _: &str,
        listener: std::net::TcpListener,
        script: &loadkit_core::protocol::SimScript,
    ) -> Option<Box<dyn loadkit_core::protocol::Simulator>> {
        use loadkit_http::protocol::sim::Running;
        use loadkit_testbed::tts_ws::TtsWsSimConfig;
        // Zero pacing (`serve-sim --ttft 0ms --itl 0ms`, as the benchmark runs it): cached
        // audio, every block answered at once.
        let config = TtsWsSimConfig {
            cached: script.ttft.is_zero() && script.itl.is_zero(),
            ..TtsWsSimConfig::default()
        };
        let server = loadkit_testbed::tts_ws::serve_on(listener, config).ok()?;
        Some(Box::new(Running {
            url: server.url(),
            stop: Box::new(move || Box::pin(server.shutdown())),
        }))
    }
}

/// The `tts` report section, from the run's tallies and counters, with its summary lines
/// (`190/200 blocks`, wall time, underrun totals).
pub fn section(result: &RunResult) -> Section {
    let stats = &result.stats;
    let tally = |name: &str| stats.tallies.get(name).copied().unwrap_or(0);
    let sessions = stats.counters.succeeded + stats.counters.failed;
    let completed = stats.counters.succeeded;
    let (blocks, done) = (tally(metric::BLOCKS_TOTAL), tally(metric::BLOCKS_COMPLETED));
    let underruns = tally(metric::UNDERRUNS);
    let underrun_ms = tally(metric::UNDERRUN_US) as f64 / 1e3;
    let per_user = (sessions > 0).then(|| underrun_ms / sessions as f64);
    let audio_s = tally(metric::AUDIO_MS) as f64 / 1e3;
    let wall_s = result.elapsed.as_secs_f64();
    let foreign = tally(metric::FOREIGN);
    let mismatches = tally(metric::DURATION_MISMATCHES);
    let mut summary = vec![
        format!(
            "{sessions} listeners · {completed} completed · {done}/{blocks} blocks · \
             {audio_s:.1} s of audio · wall {wall_s:.1} s"
        ),
        format!(
            "{underruns} underruns · {underrun_ms:.0} ms of silence in all · {:.1} ms per listener",
            per_user.unwrap_or(0.0)
        ),
    ];
    if mismatches > 0 {
        summary.push(format!(
            "{mismatches} blocks whose stated audio_duration_ms is off their samples' duration"
        ));
    }
    if foreign > 0 {
        summary.push(format!("{foreign} messages about another document ignored"));
    }
    Section::new(
        "tts",
        vec![
            ("sessions", sessions.into()),
            ("sessions_completed", completed.into()),
            ("blocks_total", blocks.into()),
            ("blocks_completed", done.into()),
            ("underruns", underruns.into()),
            ("underrun_ms_total", underrun_ms.into()),
            ("underrun_ms_per_user", per_user.into()),
            ("audio_s_total", audio_s.into()),
            ("wall_s", wall_s.into()),
            ("foreign_document_messages", foreign.into()),
            ("duration_mismatches", mismatches.into()),
        ],
    )
    .with_summary(summary)
}
