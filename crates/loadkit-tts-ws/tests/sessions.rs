//! Integration tests of the TTS WebSocket client, driven by loadkit's `Runner` against the
//! simulated TTS server (`loadkit_testbed::tts_ws`): every block of every session, playback
//! underruns when the server is slower than real time and none when it is faster, durations
//! from the audio, server errors ending every session at once, foreign documents.

use std::time::Duration;

use loadkit_core::audio::PcmFormat;
use loadkit_core::schedule::FixedUsers;
use loadkit_core::{RunResult, Runner};
use loadkit_testbed::harness::errors;
use loadkit_testbed::tts_ws::{self, AudioDelivery, AudioFormat as SimFormat, TtsWsSimConfig};
use loadkit_tts_ws::protocol::section;
use loadkit_tts_ws::{metric, AudioFormat, Delivery, TtsRequest, TtsWsClient, TtsWsConfig};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn field(result: &RunResult, name: &str) -> loadkit_core::protocol::Value {
    section(result)
        .fields
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name}"))
}

fn tally(result: &RunResult, name: &str) -> u64 {
    result.stats.tallies.get(name).copied().unwrap_or(0)
}

/// `users` listeners reading one document each through `config`.
async fn listen(config: TtsWsConfig, users: u32) -> RunResult {
    let client = TtsWsClient::new(config).expect("a valid config");
    Runner::builder(client, |ctx: &loadkit_core::RequestCtx| TtsRequest {
        seq: ctx.seq,
        user: ctx.user,
    })
    .closed_loop(FixedUsers::new(users).unwrap())
    .iterations(1)
    .timeout(Some(Duration::from_secs(30)))
    .build()
    .unwrap()
    .run()
    .await
}

fn config(url: String, blocks: usize, prefetch: usize, refill_below: Duration) -> TtsWsConfig {
    let mut c = TtsWsConfig::new(url);
    c.blocks = blocks;
    c.prefetch = prefetch;
    c.refill_below = refill_below;
    c.first_byte_timeout = Duration::from_secs(10);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_audio_completes_every_block_of_every_session() {
    // Every block is answered the instant it is asked for: the player must still come back
    // for each next batch (when its buffer drains), never wait for a message that will not
    // come.
    let server = tts_ws::serve(TtsWsSimConfig {
        cached: true,
        audio_per_char: MS(1),
        ..TtsWsSimConfig::default()
    })
    .await
    .unwrap();
    let r = listen(config(server.url(), 12, 3, MS(60)), 5).await;
    assert_eq!(r.stats.counters.succeeded, 5, "{:?}", errors(&r));
    assert_eq!(tally(&r, metric::BLOCKS_TOTAL), 60);
    assert_eq!(tally(&r, metric::BLOCKS_COMPLETED), 60);
    assert_eq!(tally(&r, metric::UNDERRUNS), 0);
    assert_eq!(server.stats().batches, 5 * 4, "12 blocks in batches of 3");
    assert_eq!(field(&r, "blocks_completed"), 60u64.into());
    assert_eq!(field(&r, "sessions_completed"), 5u64.into());
    server.shutdown().await;
}

/// A server with `synthesis_per_char` of work for `audio_per_char` of sound, one worker per
/// listener so no queue adds to it.
async fn playback(synthesis_per_char: Duration, audio_per_char: Duration) -> RunResult {
    let server = tts_ws::serve(TtsWsSimConfig {
        workers: 8,
        synthesis_base: Duration::ZERO,
        synthesis_per_char,
        audio_per_char,
        ..TtsWsSimConfig::default()
    })
    .await
    .unwrap();
    let mut c = config(server.url(), 8, 4, MS(400));
    c.text = loadkit_tts_ws::TextSource::Lines(
        vec!["The quick brown fox jumps over the lazy dog.".to_owned()].into(),
    );
    let r = listen(c, 2).await;
    server.shutdown().await;
    assert_eq!(r.stats.counters.succeeded, 2, "{:?}", errors(&r));
    assert_eq!(tally(&r, metric::BLOCKS_COMPLETED), 16);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_slower_than_real_time_starves_the_listener() {
    // 44 characters: 220 ms of audio made in 880 ms (rtf 4). Blocks of a batch are made in
    // parallel, so block 1 arrives with block 0; each next batch starts when 400 ms are left
    // and needs 880 ms: the listener hears about 480 ms of silence at the batch boundary.
    let r = playback(MS(20), MS(5)).await;
    let underruns = tally(&r, metric::UNDERRUNS);
    assert!(underruns >= 2, "{underruns} underruns");
    let silence = &r.stats.named[metric::UNDERRUN];
    assert_eq!(silence.count(), underruns);
    assert!(silence.max() >= MS(300), "{:?}", silence.max());
    let rtf = r.stats.named[metric::RTF].quantile(0.99).as_nanos() as f64 / 1e6;
    assert!(rtf > 1.5, "rtf p99 {rtf}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_faster_than_real_time_never_starves_it() {
    // The same document made 10 times faster than it plays (rtf 0.1): 400 ms of buffer
    // covers the next batch's 44 ms many times over, even on a busy machine.
    let r = playback(MS(1), MS(10)).await;
    assert_eq!(tally(&r, metric::UNDERRUNS), 0);
    assert!(!r.stats.named.contains_key(metric::UNDERRUN));
    assert_eq!(field(&r, "underrun_ms_total"), 0.0.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthesis_and_rtf_are_each_blocks_own_and_durations_come_from_the_samples() {
    // One worker: blocks are made one after the other, so each arrival gap is one block's
    // synthesis (40 chars × 6 ms = 240 ms) for 40 × 12 ms = 480 ms of audio, rtf 0.5. Raw PCM
    // at 16 kHz in base64: its duration comes from the sample count and rate.
    let server = tts_ws::serve(TtsWsSimConfig {
        workers: 1,
        synthesis_base: Duration::ZERO,
        synthesis_per_char: MS(6),
        audio_per_char: MS(12),
        delivery: AudioDelivery::Base64,
        format: SimFormat::Pcm,
        sample_rate: 16_000,
        ..TtsWsSimConfig::default()
    })
    .await
    .unwrap();
    let mut c = config(server.url(), 4, 4, MS(100));
    c.delivery = Delivery::Base64;
    c.format = AudioFormat::Pcm(PcmFormat::mono16(16_000));
    c.text = loadkit_tts_ws::TextSource::Lines(vec!["x".repeat(40)].into());
    let r = listen(c, 1).await;
    server.shutdown().await;
    assert_eq!(r.stats.counters.succeeded, 1, "{:?}", errors(&r));
    assert_eq!(tally(&r, metric::AUDIO_MS), 4 * 480);
    let synthesis = &r.stats.named[metric::BLOCK_SYNTHESIS];
    assert_eq!(synthesis.count(), 4);
    let p50 = synthesis.quantile(0.5);
    assert!(
        p50 >= MS(238) && p50 < MS(300),
        "block synthesis p50 {p50:?}"
    );
    let rtf = r.stats.named[metric::RTF].quantile(0.5).as_nanos() as f64 / 1e6;
    assert!((0.49..0.62).contains(&rtf), "rtf p50 {rtf}");
    // Time to first audio is block 0's arrival: one synthesis after the request.
    let ttfa = r.stats.named[metric::TTFA].quantile(0.5);
    assert!(ttfa >= MS(238) && ttfa < MS(400), "ttfa {ttfa:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_ends_every_session_at_once_with_its_message() {
    let server = tts_ws::serve(TtsWsSimConfig::default()).await.unwrap();
    let mut c = config(server.url(), 30, 8, MS(500));
    c.voice = "nobody".to_owned();
    let started = tokio::time::Instant::now();
    let r = listen(c, 6).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.stats.counters.failed, 6);
    assert_eq!(
        errors(&r),
        [(
            "server_error".to_owned(),
            "Voice 'nobody' is not available for model 'kokoro'".to_owned(),
            6
        )]
    );
    assert_eq!(tally(&r, metric::BLOCKS_TOTAL), 180);
    assert_eq!(tally(&r, metric::BLOCKS_COMPLETED), 0);
    assert_eq!(field(&r, "sessions_completed"), 0u64.into());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_documents_messages_are_ignored_and_counted() {
    let server = tts_ws::serve(TtsWsSimConfig {
        foreign_status: true,
        audio_per_char: MS(1),
        ..TtsWsSimConfig::default()
    })
    .await
    .unwrap();
    let r = listen(config(server.url(), 6, 2, MS(50)), 2).await;
    assert_eq!(r.stats.counters.succeeded, 2, "{:?}", errors(&r));
    assert_eq!(
        tally(&r, metric::FOREIGN),
        6,
        "one per batch, 3 batches per session"
    );
    assert_eq!(tally(&r, metric::BLOCKS_COMPLETED), 12);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stated_duration_off_the_samples_is_counted_and_the_samples_win() {
    for (misstated, mismatches) in [(0, 0), (150, 8)] {
        let server = tts_ws::serve(TtsWsSimConfig {
            misstated_ms: misstated,
            audio_per_char: MS(2),
            ..TtsWsSimConfig::default()
        })
        .await
        .unwrap();
        let mut c = config(server.url(), 4, 4, MS(50));
        c.text = loadkit_tts_ws::TextSource::Lines(vec!["y".repeat(50)].into());
        let r = listen(c, 2).await;
        server.shutdown().await;
        assert_eq!(r.stats.counters.succeeded, 2, "{:?}", errors(&r));
        assert_eq!(tally(&r, metric::DURATION_MISMATCHES), mismatches);
        // 8 blocks of 50 × 2 ms, from the samples whatever the server says.
        assert_eq!(tally(&r, metric::AUDIO_MS), 800);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_that_is_not_wav_is_a_protocol_error() {
    // The server sends raw PCM; the client expects WAV.
    let server = tts_ws::serve(TtsWsSimConfig {
        format: SimFormat::Pcm,
        audio_per_char: MS(1),
        ..TtsWsSimConfig::default()
    })
    .await
    .unwrap();
    let r = listen(config(server.url(), 2, 2, MS(50)), 1).await;
    let errs = errors(&r);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "protocol");
    assert!(errs[0].1.starts_with("malformed audio"), "{errs:?}");
    server.shutdown().await;
}
