//! `TtsWsClient`: one request is one listener's session: a WebSocket opened, the document's
//! blocks requested batch by batch as the simulated player needs them, every block's audio
//! measured, the session ended when the last block arrived.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use loadkit_core::audio::WavHeader;
use loadkit_core::metrics::TimeoutPhase;
use loadkit_core::{Client, Probe, RequestError};
use loadkit_sse::{BodyTemplate, TemplateValues};
use loadkit_ws::{Target, Ws};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::config::{AudioFormat, Delivery, TextSource, TtsConfigError, TtsWsConfig};
use crate::message::{
    Incoming, Reader, ReaderSpec, Template, Values, DEFAULT_BLOCK, DEFAULT_MESSAGE,
};
use crate::player::Player;

/// The names under which a session's counts and values are recorded.
pub mod metric {
    /// Blocks the sessions asked for (tally).
    pub const BLOCKS_TOTAL: &str = "tts_blocks_total";
    /// Blocks whose audio arrived (tally).
    pub const BLOCKS_COMPLETED: &str = "tts_blocks_completed";
    /// Underruns (tally).
    pub const UNDERRUNS: &str = "tts_underruns";
    /// Total underrun silence, in microseconds (tally).
    pub const UNDERRUN_US: &str = "tts_underrun_us";
    /// Audio received, in milliseconds (tally).
    pub const AUDIO_MS: &str = "tts_audio_ms";
    /// Messages about another document, ignored (tally).
    pub const FOREIGN: &str = "tts_foreign_document_messages";
    /// Blocks whose stated duration is off the samples' by more than 1 % and 20 ms (tally).
    pub const DURATION_MISMATCHES: &str = "tts_duration_mismatches";
    /// Session start → the first audio the listener hears (block 0).
    pub const TTFA: &str = loadkit_core::TTFA;
    /// A block's synthesis time (per block).
    pub const BLOCK_SYNTHESIS: &str = "block_synthesis";
    /// Synthesis time / audio duration (per block).
    pub const RTF: &str = "rtf";
    /// One underrun's silence (per underrun).
    pub const UNDERRUN: &str = "underrun_ms";
}

/// One session: which document it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtsRequest {
    /// The session's sequence number (its document id and texts derive from it).
    pub seq: u64,
    /// The closed-loop user (listener).
    pub user: Option<u32>,
}

/// A client for a text-to-speech server's WebSocket document-reader protocol.
///
/// A session (one engine request): open a WebSocket; request blocks `0..prefetch`; read the
/// status messages and audio; play each block, in index order from block 0's arrival, for its
/// audio's duration (read from the WAV header or the PCM format, never guessed); request the
/// next batch when less than `refill_below` of audio is left to play, with at most one batch in
/// flight (so cached audio that arrives instantly still completes the document: the refill
/// waits for the buffer to drain, as a player does); end when every block arrived. The
/// playback after the last arrival is computed, not waited for.
///
/// Milestones: the first byte at the first message; [`metric::TTFA`] when block 0 arrives;
/// per block [`metric::BLOCK_SYNTHESIS`] and [`metric::RTF`]; per underrun
/// [`metric::UNDERRUN`]; the end at the last block. Counts as tallies (see [`metric`]).
///
/// **Failures.** The connection's are loadkit-ws's (`connect`, `tls`, `http_status`,
/// `ws_close`); the server's error message fails the session with its text (`server_error`),
/// every pending block with it; audio that is not WAV, a block not requested or sent twice, a
/// binary frame with no done before it → `protocol`; no message within the first-byte (after
/// a batch) or idle timeout → `timeout`. Messages about another document are ignored and
/// counted.
#[derive(Debug)]
pub struct TtsWsClient {
    target: Target,
    message: Template,
    block: Template,
    uuid: BodyTemplate,
    reader: Reader,
    model: String,
    voice: String,
    blocks: usize,
    prefetch: usize,
    refill_below: Duration,
    delivery: Delivery,
    format: AudioFormat,
    text: TextSource,
    seed: u64,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    max_message_size: usize,
}

impl TtsWsClient {
    /// A client for `config`, every setting checked.
    ///
    /// # Errors
    ///
    /// The URL, a header, a template, a rule or a count is unusable.
    pub fn new(config: TtsWsConfig) -> Result<Self, TtsConfigError> {
        for (name, zero) in [
            ("blocks", config.blocks == 0),
            ("prefetch", config.prefetch == 0),
            ("connect timeout", config.connect_timeout.is_zero()),
            ("first byte timeout", config.first_byte_timeout.is_zero()),
            ("idle timeout", config.idle_timeout.is_zero()),
            ("max message size", config.max_message_size == 0),
        ] {
            if zero {
                return Err(TtsConfigError::Zero(name));
            }
        }
        if matches!(&config.text, TextSource::Lines(lines) if lines.is_empty()) {
            return Err(TtsConfigError::NoText);
        }
        if let AudioFormat::Pcm(f) = config.format {
            if f.sample_rate == 0 || f.frame_bytes() == 0 {
                return Err(TtsConfigError::Zero("sample rate"));
            }
        }
        let target = Target::new(
            &config.url,
            &config.headers,
            config.max_message_size,
            &config.tls,
        )?;
        let message = Template::new(
            "message",
            config.message.as_deref().unwrap_or(DEFAULT_MESSAGE),
            false,
        )?;
        let block = Template::new(
            "block",
            config.block.as_deref().unwrap_or(DEFAULT_BLOCK),
            true,
        )?;
        let reader = Reader::new(&ReaderSpec {
            status_when: &config.status_when,
            done_when: &config.done_when,
            error_when: &config.error_when,
            error_text: &config.error_text,
            document_at: &config.document_at,
            index_at: &config.index_at,
            duration_at: &config.duration_at,
            audio_at: (config.delivery == Delivery::Base64).then_some(config.audio_at.as_str()),
        })?;
        // Led by text: a template starting with `{` would be taken for JSON.
        let uuid = BodyTemplate::new("id={{uuid}}").map_err(|e| TtsConfigError::Template {
            setting: "document id",
            reason: e.to_string(),
        })?;
        Ok(Self {
            target,
            message,
            block,
            uuid,
            reader,
            model: config.model,
            voice: config.voice,
            blocks: config.blocks,
            prefetch: config.prefetch,
            refill_below: config.refill_below,
            delivery: config.delivery,
            format: config.format,
            text: config.text,
            seed: config.seed,
            connect_timeout: config.connect_timeout,
            first_byte_timeout: config.first_byte_timeout,
            idle_timeout: config.idle_timeout,
            max_message_size: config.max_message_size,
        })
    }

    /// The URL.
    pub fn url(&self) -> &str {
        self.target.url()
    }

    /// Blocks per session.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// The document id of session `seq`: a version-4 UUID from the seed and `seq`.
    pub fn document_id(&self, seq: u64) -> String {
        let values = TemplateValues {
            prompt: "",
            max_tokens: 0,
            model: "",
            seq,
            user: None,
            seed: self.seed,
        };
        String::from_utf8(self.uuid.render(&values))
            .unwrap_or_default()
            .split_off(3)
    }

    /// The text of block `index` of session `seq`.
    pub fn block_text(&self, seq: u64, index: usize) -> std::sync::Arc<str> {
        let n = seq
            .wrapping_mul(self.blocks as u64)
            .wrapping_add(index as u64);
        match &self.text {
            TextSource::Lines(lines) => lines[(n % lines.len() as u64) as usize].as_str().into(),
            TextSource::Prompts(prompts) => prompts.prompt(n),
        }
    }

    /// The batch message asking for `blocks` of session `request`.
    pub fn render(
        &self,
        request: &TtsRequest,
        document_id: &str,
        blocks: std::ops::Range<usize>,
    ) -> String {
        let mut list = String::from("[");
        for i in blocks {
            if list.len() > 1 {
                list.push(',');
            }
            let text = self.block_text(request.seq, i);
            self.block.render(
                &Values {
                    index: i as u64,
                    text: &text,
                    ..Values::default()
                },
                &mut list,
            );
        }
        list.push(']');
        let mut out = String::with_capacity(list.len() + 128);
        self.message.render(
            &Values {
                document_id,
                model: &self.model,
                voice: &self.voice,
                blocks: &list,
                seq: request.seq,
                user: request.user.unwrap_or(0),
                ..Values::default()
            },
            &mut out,
        );
        out
    }

    /// How long `audio` plays.
    fn duration(&self, audio: &[u8]) -> Result<Duration, RequestError> {
        match self.format {
            AudioFormat::Pcm(format) => Ok(format.duration(audio.len() as u64)),
            AudioFormat::Wav => match WavHeader::parse(audio) {
                Ok(Some(header)) => Ok(header.duration(audio)),
                Ok(None) => Err(RequestError::protocol(
                    "malformed audio: a block's wav data is cut short in its header",
                )),
                Err(e) => Err(RequestError::protocol(format!("malformed audio: {e}"))),
            },
        }
    }

    /// The session on an open connection.
    async fn session(
        &self,
        ws: &mut Ws,
        request: &TtsRequest,
        player: &mut Player,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let document_id = self.document_id(request.seq);
        let mut quoted = String::with_capacity(document_id.len() + 2);
        let _ = write!(quoted, "\"{document_id}\"");
        let mut decoded = Vec::new();
        // Binary delivery: the block whose audio the next binary frame is (`Some(None)`:
        // another document's, skipped).
        let mut awaiting: Option<Option<(u64, Option<f64>)>> = None;
        // The last message, for the idle deadline; `None` right after a batch was requested.
        let mut last: Option<Instant> = None;
        let mut batch_sent = Instant::now();
        let mut first_message = true;
        loop {
            if player.finished() {
                probe.mark_end();
                return Ok(());
            }
            let now = Instant::now();
            if let Some(due) = player.refill_at(now) {
                if due <= now {
                    if let Some(range) = player.request(now) {
                        let text = self.render(request, &document_id, range);
                        ws.send(Message::Text(text.into())).await.map_err(|e| {
                            loadkit_ws::read_error(&e, self.max_message_size, "the last block").0
                        })?;
                        batch_sent = Instant::now();
                        last = None;
                    }
                    continue;
                }
            }
            let wake = match player.refill_at(now) {
                Some(due) => due,
                None => match last {
                    None => batch_sent + self.first_byte_timeout,
                    Some(at) => at + self.idle_timeout,
                },
            };
            let item = tokio::select! {
                biased;
                item = ws.next() => item,
                () = tokio::time::sleep_until(wake) => {
                    if player.waiting() {
                        let now = Instant::now();
                        let (phase, after) = match last {
                            None => (TimeoutPhase::FirstByte, self.first_byte_timeout),
                            Some(_) => (TimeoutPhase::Idle, self.idle_timeout),
                        };
                        let deadline = last.map_or(batch_sent, |at| at) + after;
                        if now >= deadline {
                            let mut e = RequestError::timeout(phase, after);
                            e.message.push_str(" waiting for a block's audio");
                            return Err(e);
                        }
                    }
                    continue;
                }
            };
            let message = match item {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    return Err(
                        loadkit_ws::read_error(&e, self.max_message_size, "the last block").0,
                    )
                }
                None => return Err(loadkit_ws::dropped_error(None, "the last block")),
            };
            let data = match &message {
                Message::Text(text) => text.as_bytes(),
                Message::Binary(bytes) => bytes.as_ref(),
                Message::Close(frame) => {
                    return Err(loadkit_ws::closed_error(frame.as_ref(), "the last block"))
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            if first_message {
                probe.mark_first_byte();
                first_message = false;
            }
            probe.bytes(data.len());
            let now = Instant::now();
            last = Some(now);
            if let (Message::Binary(audio), Some(block)) = (&message, awaiting) {
                awaiting = None;
                // `None`: another document's audio, skipped.
                if let Some((index, stated)) = block {
                    self.arrived(player, index, audio, stated, now, probe)?;
                }
                continue;
            }
            match self.reader.read(data, &quoted)? {
                Incoming::Foreign { done } => {
                    probe.tally(metric::FOREIGN, 1);
                    if done && self.delivery == Delivery::Binary {
                        awaiting = Some(None);
                    }
                }
                Incoming::Error(text) => return Err(RequestError::server(text)),
                Incoming::Progress | Incoming::Other => {}
                Incoming::Done {
                    index,
                    audio,
                    stated_ms,
                } => match (self.delivery, audio) {
                    (Delivery::Base64, Some(raw)) => {
                        decode(raw, &mut decoded)?;
                        self.arrived(player, index, &decoded, stated_ms, now, probe)?;
                    }
                    _ => {
                        if awaiting.is_some() {
                            return Err(RequestError::protocol(
                                "a done status came before the previous block's audio frame",
                            ));
                        }
                        awaiting = Some(Some((index, stated_ms)));
                    }
                },
            }
        }
    }

    /// Block `index`'s audio arrived at `now`.
    fn arrived(
        &self,
        player: &mut Player,
        index: u64,
        audio: &[u8],
        stated_ms: Option<f64>,
        now: Instant,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let duration = self.duration(audio)?;
        if let Some(stated) = stated_ms {
            let real = duration.as_secs_f64() * 1e3;
            if (stated - real).abs() > (real * 0.01).max(20.0) {
                probe.tally(metric::DURATION_MISMATCHES, 1);
            }
        }
        let arrival = player
            .arrive(index, duration, now)
            .map_err(|e| RequestError::protocol(e.to_string()))?;
        if arrival.first_audio {
            probe.sample_since(metric::TTFA, probe.sent_stamp());
        }
        probe.sample(metric::BLOCK_SYNTHESIS, arrival.synthesis);
        if !duration.is_zero() {
            probe.sample_ratio(
                metric::RTF,
                arrival.synthesis.as_secs_f64() / duration.as_secs_f64(),
            );
        }
        if let Some(gap) = arrival.underrun {
            probe.sample(metric::UNDERRUN, gap);
        }
        Ok(())
    }
}

/// Decodes a JSON string of base64 into `out` (reused across blocks).
fn decode(raw: &str, out: &mut Vec<u8>) -> Result<(), RequestError> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| RequestError::protocol("malformed message: the audio is not a string"))?;
    out.clear();
    base64::engine::general_purpose::STANDARD
        .decode_vec(inner, out)
        .map_err(|e| RequestError::protocol(format!("malformed audio: bad base64: {e}")))
}

impl Client for TtsWsClient {
    type Request = TtsRequest;
    type Session = ();

    async fn call(
        &self,
        _: &mut (),
        request: TtsRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        probe.tally(metric::BLOCKS_TOTAL, self.blocks as u64);
        let mut player = Player::new(self.blocks, self.prefetch, self.refill_below);
        let result = match Box::pin(self.target.connect(self.connect_timeout)).await {
            Err(e) => Err(e),
            Ok(mut ws) => {
                let result = self.session(&mut ws, &request, &mut player, probe).await;
                // Off the clock: the close handshake runs in the background.
                loadkit_ws::close_in_background(ws);
                result
            }
        };
        let (underruns, silence) = player.underruns();
        probe.tally(metric::BLOCKS_COMPLETED, player.received() as u64);
        probe.tally(metric::UNDERRUNS, underruns);
        probe.tally(
            metric::UNDERRUN_US,
            u64::try_from(silence.as_micros()).unwrap_or(u64::MAX),
        );
        probe.tally(
            metric::AUDIO_MS,
            u64::try_from(player.audio_total().as_millis()).unwrap_or(u64::MAX),
        );
        result
    }
}
