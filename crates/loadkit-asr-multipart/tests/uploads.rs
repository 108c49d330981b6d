//! Integration tests of the ASR client, driven by loadkit's `Runner` against the simulated
//! ASR server (`loadkit_testbed::asr`): a bounded queue's 503s grouped, 413 and 400, the
//! real-time factor from the audio's real duration, word error rate against expected text,
//! `.txt` transcripts beside the files, and plain-text answers.

use std::time::Duration;

use loadkit_asr_multipart::protocol::section;
use loadkit_asr_multipart::{load, metric, AsrClient, AsrConfig, AsrRequest, AudioFile};
use loadkit_core::audio::{wav_bytes, PcmFormat};
use loadkit_core::schedule::FixedUsers;
use loadkit_core::{RequestCtx, RunResult, Runner};
use loadkit_testbed::asr::{self, AsrSimConfig};
use loadkit_testbed::harness::errors;

/// `seconds` of silence, 16 kHz mono.
fn mono(seconds: f64) -> Vec<u8> {
    let samples = (seconds * 16_000.0) as usize;
    wav_bytes(PcmFormat::mono16(16_000), &vec![0; samples * 2])
}

/// `users` users uploading once each, every file in turn.
async fn upload(
    sim: AsrSimConfig,
    audio: Vec<AudioFile>,
    users: u32,
    edit: impl FnOnce(&mut AsrConfig),
) -> RunResult {
    let server = asr::serve(sim).await.unwrap();
    let mut config = AsrConfig::new(server.base_url());
    config.audio = audio;
    edit(&mut config);
    let client = AsrClient::new(config).unwrap();
    let files = client.files() as u64;
    let r = Runner::builder(client, move |ctx: &RequestCtx| AsrRequest {
        file: (ctx.seq % files) as usize,
    })
    .closed_loop(FixedUsers::new(users).unwrap())
    .iterations(1)
    .timeout(Some(Duration::from_secs(20)))
    .build()
    .unwrap()
    .run()
    .await;
    server.shutdown().await;
    r
}

fn ratio(r: &RunResult, name: &str, q: f64) -> f64 {
    r.stats.named[name].quantile(q).as_nanos() as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourteen_uploads_against_two_workers_and_eight_places_give_four_grouped_503s() {
    // 20 ms + 2 s × 0.1 per upload: the 10 admitted ones hold the server for a second, while
    // all 14 arrive at once.
    let r = upload(
        AsrSimConfig::default(),
        vec![AudioFile::new("a.wav", mono(2.0))],
        14,
        |_| {},
    )
    .await;
    assert_eq!(r.stats.counters.succeeded, 10, "{:?}", errors(&r));
    assert_eq!(
        errors(&r),
        [(
            "http_status".to_owned(),
            "HTTP 503: Too many concurrent requests".to_owned(),
            4
        )]
    );
    // The queue shows in the latency: the last admitted waited for four rounds of two.
    assert!(
        r.stats.e2e.max() >= Duration::from_millis(4 * 220),
        "{:?}",
        r.stats.e2e.max()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_too_large_gets_413_and_audio_that_is_not_wav_400() {
    let small = AsrSimConfig {
        max_upload: 10_000,
        ..AsrSimConfig::default()
    };
    let r = upload(small, vec![AudioFile::new("a.wav", mono(1.0))], 2, |_| {}).await;
    assert_eq!(
        errors(&r),
        [(
            "http_status".to_owned(),
            "HTTP 413: File too large: the limit is 10000 bytes".to_owned(),
            2
        )]
    );
    let mp3 = AudioFile::new("a.mp3", &b"ID3\x04\x00 not really audio"[..]);
    assert_eq!(mp3.duration, None);
    let r = upload(AsrSimConfig::default(), vec![mp3], 1, |_| {}).await;
    assert_eq!(errors(&r)[0].1, "HTTP 400: Invalid audio: not a wav file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtf_uses_the_real_duration_whatever_the_format() {
    // 1.5 s at 22.05 kHz stereo and at 16 kHz mono: the same duration, so the same rtf
    // ((20 ms + 1.5 s × 0.1) / 1.5 s ≈ 0.113) and 1500 ms of audio each.
    let stereo = PcmFormat {
        sample_rate: 22_050,
        channels: 2,
        bits_per_sample: 16,
    };
    let a = AudioFile::new(
        "stereo.wav",
        wav_bytes(stereo, &vec![0; 22_050 * 4 * 3 / 2]),
    );
    let b = AudioFile::new("mono.wav", mono(1.5));
    let sim = AsrSimConfig {
        workers: 4,
        ..AsrSimConfig::default()
    };
    let r = upload(sim, vec![a, b], 2, |_| {}).await;
    assert_eq!(r.stats.counters.succeeded, 2, "{:?}", errors(&r));
    assert_eq!(r.stats.tallies[metric::AUDIO_MS], 3000);
    let (low, high) = (ratio(&r, metric::RTF, 0.0), ratio(&r, metric::RTF, 1.0));
    assert!(low >= 0.112 && high < 0.16, "rtf {low}..{high}");
    assert!(high - low < 0.03, "both files' rtf alike: {low}..{high}");
    // The upload is stamped, and ends before the answer.
    let up = &r.stats.named[metric::UPLOAD];
    assert_eq!(up.count(), 2);
    assert!(up.max() <= r.stats.e2e.quantile(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_error_rate_is_total_edits_over_total_reference_words() {
    // The server hears "the quick brown fox jumps over the lazy dog". One file expects it
    // exactly, the other "The quick brown fox jumped over the lazy dog!" (one substitution
    // in 9 words), read from .txt files beside them.
    let dir = std::env::temp_dir().join(format!("loadkit-asr-wer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.wav"), mono(0.5)).unwrap();
    std::fs::write(
        dir.join("a.txt"),
        "The quick brown fox jumps over the lazy dog.",
    )
    .unwrap();
    std::fs::write(dir.join("b.wav"), mono(0.5)).unwrap();
    std::fs::write(
        dir.join("b.txt"),
        "The quick brown fox jumped over the lazy dog!",
    )
    .unwrap();
    let audio = load(&dir).unwrap();
    assert_eq!(
        audio.len(),
        2,
        "the .txt files are transcripts, not uploads"
    );
    let r = upload(AsrSimConfig::default(), audio, 2, |_| {}).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(r.stats.counters.succeeded, 2, "{:?}", errors(&r));
    assert_eq!(r.stats.tallies[metric::WER_EDITS], 1);
    assert_eq!(r.stats.tallies[metric::WER_WORDS], 18);
    let s = section(&r);
    let wer = s
        .fields
        .iter()
        .find(|(n, _)| *n == "wer")
        .unwrap()
        .1
        .clone();
    assert_eq!(wer, (1.0 / 18.0).into());
    assert!(
        s.summary[0].starts_with("WER 5.6 % over 2 transcripts"),
        "{:?}",
        s.summary
    );
    // Per request: 0 and 1/9.
    assert!(ratio(&r, metric::WER, 1.0) > 0.11 && ratio(&r, metric::WER, 0.0) < 0.001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_text_answer_is_the_transcript() {
    let audio = vec![AudioFile::new("a.wav", mono(0.5)).expecting("the quick brown fox")];
    let r = upload(AsrSimConfig::default(), audio, 1, |c| {
        c.response_format = Some("text".into());
    })
    .await;
    assert_eq!(r.stats.counters.succeeded, 1, "{:?}", errors(&r));
    // "the quick brown fox" against the server's nine words: five insertions.
    assert_eq!(r.stats.tallies[metric::WER_EDITS], 5);
    // A pointer that finds nothing in a JSON answer is a protocol error.
    let audio = vec![AudioFile::new("a.wav", mono(0.5))];
    let r = upload(AsrSimConfig::default(), audio, 1, |c| {
        c.transcript_pointer = "/result/text".into();
    })
    .await;
    assert_eq!(
        errors(&r),
        [(
            "protocol".to_owned(),
            "no transcript string at /result/text in the response".to_owned(),
            1
        )]
    );
}
