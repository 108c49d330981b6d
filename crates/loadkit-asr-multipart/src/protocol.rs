//! `asr` as a front end registers it ([`ASR`]): the audio and its expected transcripts, the
//! form's fields, the health check, the `asr` report section and the simulator.

use std::path::Path;

use loadkit_core::audio::{wav_bytes, PcmFormat};
use loadkit_core::protocol::{
    Launch, OptionSpec, Options, Prepared, Protocol, ProtocolName, Section, Settings, SetupError,
    Value,
};
use loadkit_core::{RequestCtx, RunResult};
use loadkit_http::protocol::{health_preflight, http_config, HEALTH_PATH, NO_HEALTH_CHECK};

use crate::{load, metric, AsrClient, AsrConfig, AsrRequest, AudioFile};

/// `--protocol asr`.
pub static ASR: Asr = Asr;

/// Speech to text by multipart upload.
#[derive(Debug)]
pub struct Asr;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value(
        "audio",
        "FILE|DIR",
        "The audio to upload: a file, or every file of a directory in turn (a STEM.txt beside \
         a file is its expected transcript) [default with the simulator: a 2 s 16 kHz tone]",
    ),
    OptionSpec::value(
        "expected",
        "TEXT|FILE",
        "What is said in every file (a file's text, or the text itself), for the word error \
         rate; instead of the .txt files",
    ),
    OptionSpec::value(
        "language",
        "CODE",
        "The language field (omitted by default)",
    ),
    OptionSpec::value(
        "transcription-format",
        "FORMAT",
        "The response_format field: json ({\"text\": ...}), text (a plain body), or another \
         the server knows",
    )
    .default("json"),
    OptionSpec::value(
        "form-field",
        "NAME=VALUE",
        "Another form field, sent before the file (repeatable)",
    )
    .repeat(),
    OptionSpec::value("file-field", "NAME", "The file's form field").default("file"),
    OptionSpec::value(
        "transcript-pointer",
        "POINTER",
        "Where a JSON response's transcript is",
    )
    .default("/text"),
    HEALTH_PATH,
    NO_HEALTH_CHECK,
];

impl Protocol for Asr {
    fn names(&self) -> &'static [ProtocolName] {
        &[ProtocolName {
            name: "asr",
            about: "Speech to text by multipart upload: OpenAI-compatible \
                    /v1/audio/transcriptions or any form endpoint (upload, rtf, word error rate)",
        }]
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn build(&self, s: &Settings, o: &Options) -> Result<Box<dyn Launch>, SetupError> {
        let mut audio = match o.get("audio") {
            Some(path) => {
                load(Path::new(path)).map_err(|e| SetupError::new(format!("--audio {e}")))?
            }
            None if s.simulated => vec![tone()],
            None => {
                return Err(SetupError::new(
                    "--protocol asr needs --audio FILE|DIR: the audio to upload",
                ))
            }
        };
        if let Some(expected) = o.get("expected") {
            let path = Path::new(expected);
            let text = if path.is_file() {
                std::fs::read_to_string(path).map_err(|e| {
                    SetupError::new(format!("--expected {expected}: cannot read it: {e}"))
                })?
            } else {
                expected.to_owned()
            };
            audio = audio.into_iter().map(|a| a.expecting(&text)).collect();
        }
        let mut form_fields = Vec::new();
        for field in o.all("form-field") {
            let (name, value) = field.split_once('=').ok_or_else(|| {
                SetupError::new(format!("--form-field {field}: expected NAME=VALUE"))
            })?;
            form_fields.push((name.trim().to_owned(), value.to_owned()));
        }
        let files = audio.len();
        let with_duration = audio.iter().filter(|a| a.duration.is_some()).count();
        let with_expected = audio.iter().filter(|a| a.expected.is_some()).count();
        let config = AsrConfig {
            url: s.url.clone(),
            model: Some(s.model.clone().unwrap_or_else(|| "whisper-1".to_owned())),
            language: o.get("language").map(str::to_owned),
            response_format: o.get("transcription-format").map(str::to_owned),
            form_fields,
            file_field: o.get("file-field").unwrap_or("file").to_owned(),
            transcript_pointer: o.get("transcript-pointer").unwrap_or("/text").to_owned(),
            audio,
            api_key: s.api_key.clone(),
            headers: s.headers.clone(),
            http: http_config(s),
            seed: s.seed,
        };
        let model = config.model.clone();
        let client = AsrClient::new(config).map_err(|e| SetupError::caused("--protocol asr", e))?;
        let target = client.uri().to_string();
        let source = move |ctx: &RequestCtx| AsrRequest {
            file: usize::try_from(ctx.seq % files as u64).unwrap_or(0),
        };
        let settings = vec![
            ("model", Value::from(model)),
            ("audio_files", Value::from(files as u64)),
            (
                "audio_files_with_duration",
                Value::from(with_duration as u64),
            ),
            (
                "audio_files_with_expected",
                Value::from(with_expected as u64),
            ),
        ];
        let health = health_preflight(
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
        use loadkit_testbed::asr::AsrSimConfig;
        let listener = tokio::net::TcpListener::from_std(listener).ok()?;
        // No ITL (`serve-sim --protocol asr --ttft 200ms --itl 0ms`, as the benchmark runs
        // it): room for every request, each answered after the TTFT, so the client's cost is
        // what is measured.
        let config = if script.itl.is_zero() {
            AsrSimConfig {
                workers: 4096,
                queue: 4096,
                rtf: 0.0,
                overhead: script.ttft,
                ..AsrSimConfig::default()
            }
        } else {
            AsrSimConfig::default()
        };
        let server = loadkit_testbed::asr::serve_on(listener, config);
        Some(Box::new(Running {
            url: server.base_url(),
            stop: Box::new(move || Box::pin(server.shutdown())),
        }))
    }
}

/// 2 s of a 440 Hz tone, 16 kHz mono: the simulator's default upload.
fn tone() -> AudioFile {
    let samples: Vec<u8> = (0..32_000u32)
        .flat_map(|i| {
            let t = f64::from(i) / 16_000.0;
            let v = (t * 440.0 * std::f64::consts::TAU).sin() * 8_000.0;
            (v as i16).to_le_bytes()
        })
        .collect();
    AudioFile::new(
        "loadkit-tone.wav",
        wav_bytes(PcmFormat::mono16(16_000), &samples),
    )
}

/// The `asr` report section, from the run's tallies, with its summary line.
pub fn section(result: &RunResult) -> Section {
    let tally = |name: &str| result.stats.tallies.get(name).copied().unwrap_or(0);
    let (edits, words) = (tally(metric::WER_EDITS), tally(metric::WER_WORDS));
    let requests = tally(metric::WER_REQUESTS);
    let wer = (words > 0).then(|| edits as f64 / words as f64);
    let audio_s = tally(metric::AUDIO_MS) as f64 / 1e3;
    let mut line = match wer {
        Some(w) => format!(
            "WER {:.1} % over {requests} transcripts ({edits} word edits / {words} words)",
            w * 100.0
        ),
        None => "WER not computed (no --expected text or .txt transcripts)".to_owned(),
    };
    line.push_str(&format!(" · {audio_s:.1} s of audio uploaded"));
    Section::new(
        "asr",
        vec![
            ("wer", wer.into()),
            ("wer_requests", requests.into()),
            ("wer_edits", edits.into()),
            ("wer_reference_words", words.into()),
            ("audio_seconds_total", audio_s.into()),
        ],
    )
    .with_summary(vec![line])
}
