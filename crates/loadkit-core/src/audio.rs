//! Audio durations from the samples, never guessed from byte counts: a WAV header reader (which
//! also copes with streamed WAV whose sizes are unknown) and raw PCM formats, shared by the
//! speech protocols (TTS real-time factor and playback, ASR real-time factor).

use std::fmt;
use std::time::Duration;

/// How raw PCM samples are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Bits per sample (16 for the usual signed little-endian PCM).
    pub bits_per_sample: u16,
}

impl PcmFormat {
    /// 16-bit mono at `sample_rate` (what TTS servers send as `pcm`).
    pub const fn mono16(sample_rate: u32) -> Self {
        Self {
            sample_rate,
            channels: 1,
            bits_per_sample: 16,
        }
    }

    /// Bytes of one frame (one sample of every channel).
    pub fn frame_bytes(&self) -> u64 {
        u64::from(self.channels) * u64::from(self.bits_per_sample).div_ceil(8)
    }

    /// How long `bytes` of samples play (whole frames only; a trailing partial frame is not
    /// sound). Zero for a degenerate format.
    pub fn duration(&self, bytes: u64) -> Duration {
        let frame = self.frame_bytes();
        if frame == 0 || self.sample_rate == 0 {
            return Duration::ZERO;
        }
        let frames = bytes / frame;
        let rate = u64::from(self.sample_rate);
        let secs = frames / rate;
        let rest = frames % rate;
        // rest < rate ≤ u32::MAX, so rest * 1e9 fits in u64.
        Duration::from_secs(secs) + Duration::from_nanos(rest * 1_000_000_000 / rate)
    }
}

/// A WAV (RIFF `WAVE`) header: the sample format and where the samples start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavHeader {
    /// The samples' format.
    pub format: PcmFormat,
    /// Byte offset of the first sample (after the `data` chunk header).
    pub data_offset: usize,
    /// The `data` chunk's declared size, or `None` when the writer did not know it (streamed
    /// WAV declares 0 or `0xFFFF_FFFF`): then the samples are whatever follows.
    pub data_len: Option<u64>,
}

/// Why bytes are not a WAV file this module can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// Not `RIFF....WAVE`.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// The `fmt ` chunk is missing, short or describes no sound.
    #[error("invalid WAV format chunk: {0}")]
    BadFormat(&'static str),
    /// The header ends before its `data` chunk.
    #[error("WAV header truncated before the data chunk")]
    Truncated,
}

/// Chunks skipped before giving up on finding `data` (a hostile file could declare many).
const MAX_CHUNKS: usize = 64;

impl WavHeader {
    /// Reads the header at the start of `bytes`: `Ok(None)` when more bytes are needed (a
    /// streamed response's first chunks), an error when they cannot be a WAV file.
    ///
    /// ```
    /// use loadkit_core::audio::{wav_bytes, PcmFormat, WavHeader};
    ///
    /// let wav = wav_bytes(PcmFormat::mono16(16_000), &[0u8; 32_000]);
    /// let header = WavHeader::parse(&wav).unwrap().unwrap();
    /// assert_eq!(header.data_offset, 44);
    /// assert_eq!(header.duration(&wav).as_millis(), 1000);
    /// assert_eq!(WavHeader::parse(&wav[..20]), Ok(None));
    /// ```
    ///
    /// # Errors
    ///
    /// The bytes are not a RIFF/WAVE file, or its format chunk describes no sound.
    pub fn parse(bytes: &[u8]) -> Result<Option<WavHeader>, AudioError> {
        if bytes.len() < 12 {
            return if b"RIFF".starts_with(&bytes[..bytes.len().min(4)]) {
                Ok(None)
            } else {
                Err(AudioError::NotWav)
            };
        }
        if &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(AudioError::NotWav);
        }
        let mut at = 12usize;
        let mut format = None;
        for _ in 0..MAX_CHUNKS {
            let Some(head) = bytes.get(at..at + 8) else {
                return Ok(None);
            };
            let id = &head[..4];
            let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let body = at + 8;
            if id == b"data" {
                let format = format.ok_or(AudioError::BadFormat("data before fmt"))?;
                let data_len = (size != 0 && size != u32::MAX).then_some(u64::from(size));
                return Ok(Some(WavHeader {
                    format,
                    data_offset: body,
                    data_len,
                }));
            }
            if id == b"fmt " {
                let Some(f) = bytes.get(body..body + 16) else {
                    return if size < 16 {
                        Err(AudioError::BadFormat("shorter than 16 bytes"))
                    } else {
                        Ok(None)
                    };
                };
                if size < 16 {
                    return Err(AudioError::BadFormat("shorter than 16 bytes"));
                }
                let channels = u16::from_le_bytes([f[2], f[3]]);
                let sample_rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                let bits_per_sample = u16::from_le_bytes([f[14], f[15]]);
                if channels == 0 || sample_rate == 0 || bits_per_sample == 0 {
                    return Err(AudioError::BadFormat("zero channels, rate or bits"));
                }
                format = Some(PcmFormat {
                    sample_rate,
                    channels,
                    bits_per_sample,
                });
            }
            // Chunks are padded to an even size.
            let padded = usize::try_from(size)
                .unwrap_or(usize::MAX)
                .saturating_add(usize::from(size % 2 == 1));
            at = body.saturating_add(padded);
        }
        Err(AudioError::Truncated)
    }

    /// How long the file in `bytes` (header included) plays: the declared data size when
    /// known and present, else the samples actually there.
    pub fn duration(&self, bytes: &[u8]) -> Duration {
        let present = bytes.len().saturating_sub(self.data_offset) as u64;
        self.format
            .duration(self.data_len.map_or(present, |n| n.min(present)))
    }
}

/// How long `bytes` of a whole WAV file play.
///
/// # Errors
///
/// Not a WAV file, or its header is cut short.
pub fn wav_duration(bytes: &[u8]) -> Result<Duration, AudioError> {
    WavHeader::parse(bytes)?
        .map(|h| h.duration(bytes))
        .ok_or(AudioError::Truncated)
}

/// A WAV file of `samples` in `format` (a canonical 44-byte header), for simulators and tests.
pub fn wav_bytes(format: PcmFormat, samples: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + samples.len());
    out.extend_from_slice(&wav_header(format, Some(samples.len() as u64)));
    out.extend_from_slice(samples);
    out
}

/// The canonical 44-byte header for `data_len` bytes of samples (`None`: unknown, as a streamed
/// WAV writes it).
pub fn wav_header(format: PcmFormat, data_len: Option<u64>) -> [u8; 44] {
    let data = data_len.map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
    let riff = data.saturating_add(36);
    let block_align = u16::try_from(format.frame_bytes()).unwrap_or(u16::MAX);
    let byte_rate = format.sample_rate.saturating_mul(u32::from(block_align));
    let mut h = [0u8; 44];
    h[..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff.to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&format.channels.to_le_bytes());
    h[24..28].copy_from_slice(&format.sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&format.bits_per_sample.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

impl fmt::Display for PcmFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} Hz, {} channel(s), {} bit",
            self.sample_rate, self.channels, self.bits_per_sample
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_length_at_different_rates_and_channels_gives_the_same_duration() {
        // 1.5 s at 22.05 kHz stereo 16-bit, and 1.5 s at 16 kHz mono 16-bit.
        let stereo = PcmFormat {
            sample_rate: 22_050,
            channels: 2,
            bits_per_sample: 16,
        };
        let a = wav_bytes(stereo, &vec![0u8; 22_050 * 3 / 2 * 4]);
        let b = wav_bytes(PcmFormat::mono16(16_000), &vec![0u8; 24_000 * 2]);
        assert_eq!(wav_duration(&a), Ok(Duration::from_millis(1500)));
        assert_eq!(wav_duration(&b), Ok(Duration::from_millis(1500)));
        assert_ne!(a.len(), b.len());
    }

    #[test]
    fn streamed_wav_with_unknown_size_counts_the_samples_present() {
        let format = PcmFormat::mono16(24_000);
        let mut wav = wav_header(format, None).to_vec();
        wav.extend_from_slice(&[0u8; 24_000]); // 0.5 s
        let h = WavHeader::parse(&wav).unwrap().unwrap();
        assert_eq!(h.data_len, None);
        assert_eq!(h.duration(&wav), Duration::from_millis(500));
    }

    #[test]
    fn extra_chunks_before_data_are_skipped_and_odd_sizes_padded() {
        let format = PcmFormat::mono16(8_000);
        let h = wav_header(format, Some(16_000));
        let mut wav = h[..36].to_vec();
        wav.extend_from_slice(b"LIST");
        wav.extend_from_slice(&3u32.to_le_bytes());
        wav.extend_from_slice(b"abc\0"); // 3 bytes + 1 pad
        wav.extend_from_slice(&h[36..]);
        wav.extend_from_slice(&[0u8; 16_000]);
        assert_eq!(wav_duration(&wav), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn bad_input_is_an_error_or_a_request_for_more_bytes() {
        assert_eq!(WavHeader::parse(b"RIF"), Ok(None));
        assert_eq!(WavHeader::parse(b"ID3\x03"), Err(AudioError::NotWav));
        assert_eq!(
            WavHeader::parse(b"RIFF\0\0\0\0WAVEdata\0\0\0\0"),
            Err(AudioError::BadFormat("data before fmt"))
        );
        let mut zero = wav_header(PcmFormat::mono16(16_000), Some(0)).to_vec();
        zero[22] = 0; // no channels
        assert!(matches!(
            WavHeader::parse(&zero),
            Err(AudioError::BadFormat(_))
        ));
        let wav = wav_bytes(PcmFormat::mono16(16_000), &[0u8; 100]);
        assert_eq!(wav_duration(&wav[..30]), Err(AudioError::Truncated));
        // A declared size larger than what arrived: only the samples present play.
        assert_eq!(wav_duration(&wav[..44 + 32]), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn pcm_partial_frames_do_not_play() {
        let f = PcmFormat::mono16(1000);
        assert_eq!(f.duration(2001), Duration::from_millis(1000));
        assert_eq!(PcmFormat::mono16(0).duration(100), Duration::ZERO);
    }
}
