//! The uploads: audio files read once (a WAV's duration computed from its header), each with
//! its expected transcript, and each file's multipart/form-data body built once, so a request
//! costs a reference count, not a copy of the audio.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};

use crate::wer::normalize;

/// One audio file to upload.
#[derive(Debug, Clone)]
pub struct AudioFile {
    /// The file name sent (`filename=`).
    pub name: String,
    /// Its bytes.
    pub bytes: Bytes,
    /// How long it plays, for a WAV file (other files are sent as they are, with no duration).
    pub duration: Option<Duration>,
    /// What is said in it, as normalised words (from `--expected` or a `.txt` beside it).
    pub expected: Option<Arc<[String]>>,
}

impl AudioFile {
    /// A file of `bytes` named `name`, its duration read when it is a WAV.
    pub fn new(name: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            name: name.into(),
            duration: loadkit_core::audio::wav_duration(&bytes).ok(),
            bytes,
            expected: None,
        }
    }

    /// With `text` as its expected transcript.
    pub fn expecting(mut self, text: &str) -> Self {
        self.expected = Some(normalize(text).into());
        self
    }

    fn content_type(&self) -> &'static str {
        let lower = self.name.to_ascii_lowercase();
        match lower.rsplit('.').next() {
            Some("wav") => "audio/wav",
            Some("mp3") => "audio/mpeg",
            Some("flac") => "audio/flac",
            Some("ogg" | "oga" | "opus") => "audio/ogg",
            Some("m4a" | "mp4") => "audio/mp4",
            Some("webm") => "audio/webm",
            _ => "application/octet-stream",
        }
    }
}

/// Why the audio could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioSetError {
    /// A file or directory could not be read.
    #[error("{path}: {error}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A directory with no audio in it.
    #[error("{0}: no audio file in it (a .txt beside a file is its expected transcript)")]
    Empty(PathBuf),
}

fn read(path: &Path) -> Result<Vec<u8>, AudioSetError> {
    std::fs::read(path).map_err(|error| AudioSetError::Read {
        path: path.to_owned(),
        error,
    })
}

/// The audio at `path`: one file, or every file of a directory but `.txt` ones, sorted by
/// name. A `STEM.txt` beside a file is its expected transcript.
///
/// # Errors
///
/// A path that cannot be read, or a directory with no audio.
pub fn load(path: &Path) -> Result<Vec<AudioFile>, AudioSetError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|error| AudioSetError::Read {
            path: path.to_owned(),
            error,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "txt"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(AudioSetError::Empty(path.to_owned()));
        }
        files
    } else {
        vec![path.to_owned()]
    };
    files
        .iter()
        .map(|file| {
            let name = file
                .file_name()
                .map_or_else(|| "audio".to_owned(), |n| n.to_string_lossy().into_owned());
            let mut audio = AudioFile::new(name, read(file)?);
            let txt = file.with_extension("txt");
            if txt.is_file() {
                let text = String::from_utf8_lossy(&read(&txt)?).into_owned();
                audio = audio.expecting(&text);
            }
            Ok(audio)
        })
        .collect()
}

/// A multipart/form-data body builder: the text fields, then the file.
#[derive(Debug, Clone)]
pub(crate) struct Form {
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) file_field: String,
    pub(crate) boundary: String,
}

impl Form {
    /// The `Content-Type` header's value.
    pub(crate) fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// `true` when the boundary occurs in `audio` (another must be picked).
    pub(crate) fn clashes(&self, audio: &AudioFile) -> bool {
        let delimiter = format!("--{}", self.boundary);
        audio
            .bytes
            .windows(delimiter.len())
            .any(|w| w == delimiter.as_bytes())
    }

    /// The body uploading `audio` (check [`clashes`](Self::clashes) first).
    pub(crate) fn body(&self, audio: &AudioFile) -> Bytes {
        let delimiter = format!("--{}", self.boundary);
        let mut out = BytesMut::with_capacity(audio.bytes.len() + 512);
        for (name, value) in &self.fields {
            out.put_slice(delimiter.as_bytes());
            out.put_slice(
                format!(
                    "\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n",
                    quote(name)
                )
                .as_bytes(),
            );
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(delimiter.as_bytes());
        out.put_slice(
            format!(
                "\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
                quote(&self.file_field),
                quote(&audio.name),
                audio.content_type()
            )
            .as_bytes(),
        );
        out.put_slice(&audio.bytes);
        out.put_slice(b"\r\n");
        out.put_slice(delimiter.as_bytes());
        out.put_slice(b"--\r\n");
        out.freeze()
    }
}

/// A field name or file name inside the quotes of `Content-Disposition` (quotes and line
/// breaks percent-encoded, as browsers do).
fn quote(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadkit_core::audio::{wav_bytes, PcmFormat};

    #[test]
    fn the_form_is_fields_then_the_file() {
        let form = Form {
            fields: vec![("model".into(), "whisper-1".into())],
            file_field: "file".into(),
            boundary: "B0UND".into(),
        };
        let audio = AudioFile::new("a \"b\".wav", Bytes::from_static(b"xyz"));
        assert!(!form.clashes(&audio));
        let body = form.body(&audio);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "--B0UND\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --B0UND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a %22b%22.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\nxyz\r\n--B0UND--\r\n"
        );
        let clash = AudioFile::new("x.bin", Bytes::from_static(b"..--B0UND.."));
        assert!(form.clashes(&clash));
    }

    #[test]
    fn two_wavs_of_the_same_length_have_the_same_duration_whatever_their_format() {
        let stereo = PcmFormat {
            sample_rate: 22_050,
            channels: 2,
            bits_per_sample: 16,
        };
        let a = AudioFile::new("a.wav", wav_bytes(stereo, &vec![0; 22_050 * 4 * 3 / 2]));
        let b = AudioFile::new(
            "b.wav",
            wav_bytes(PcmFormat::mono16(16_000), &vec![0; 48_000]),
        );
        assert_eq!(a.duration, Some(Duration::from_millis(1500)));
        assert_eq!(a.duration, b.duration);
        assert_eq!(
            AudioFile::new("c.mp3", Bytes::from_static(b"ID3")).duration,
            None
        );
    }
}
