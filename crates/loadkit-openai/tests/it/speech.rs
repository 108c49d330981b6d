//! Text to speech over HTTP (`SpeechClient`) against the simulated `/v1/audio/speech`: time to
//! first audio and the real-time factor from the audio's samples, streamed and whole, WAV and
//! PCM (the server's `x-sample-rate` or the configured rate), and the server's refusals.

use std::sync::Arc;
use std::time::Duration;

use loadkit_core::RunResult;
use loadkit_openai::speech::metric;
use loadkit_openai::{SpeechClient, SpeechConfig, SpeechFormat, SpeechRequest};
use loadkit_testbed::harness::{errors, run};
use loadkit_testbed::tts_http::{self, TtsHttpSimConfig};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// 50 characters: 50 × 20 ms = 1 s of audio.
const INPUT: &str = "Fifty characters of text to be spoken aloud, ok...";

async fn speak(sim: TtsHttpSimConfig, edit: impl FnOnce(&mut SpeechConfig)) -> RunResult {
    assert_eq!(INPUT.chars().count(), 50);
    let server = tts_http::serve(sim).await.unwrap();
    let mut config = SpeechConfig::new(server.base_url());
    edit(&mut config);
    let client = SpeechClient::new(config).unwrap();
    let input: Arc<str> = INPUT.into();
    let r = run(
        client,
        move |_: &loadkit_core::RequestCtx| SpeechRequest {
            input: input.clone(),
        },
        4,
        2,
    )
    .await;
    server.shutdown().await;
    r
}

fn sim(stream: bool) -> TtsHttpSimConfig {
    TtsHttpSimConfig {
        audio_per_char: MS(20),
        synthesis_per_char: MS(4),
        first_audio: MS(40),
        chunk: MS(100),
        stream,
        ..TtsHttpSimConfig::default()
    }
}

fn ratio(r: &RunResult, name: &str) -> f64 {
    r.stats.named[name].quantile(0.5).as_nanos() as f64 / 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_wav_gives_first_audio_early_and_its_duration_from_the_samples() {
    // A streamed WAV declares unknown sizes: the 1 s is counted from the samples that came.
    // Ten 100 ms chunks, the first after 40 ms, then one every 20 ms (rtf 0.2): 220 ms.
    let r = speak(sim(true), |_| {}).await;
    assert_eq!(r.stats.counters.succeeded, 4, "{:?}", errors(&r));
    assert_eq!(r.stats.tallies[metric::AUDIO_MS], 4 * 1000);
    let ttfa = r.stats.named[metric::TTFA].quantile(0.5);
    assert!(ttfa >= MS(40) && ttfa < MS(90), "ttfa {ttfa:?}");
    let e2e = r.stats.e2e.quantile(0.5);
    assert!(e2e >= MS(220) && e2e < MS(300), "e2e {e2e:?}");
    let rtf = ratio(&r, metric::RTF);
    assert!((0.22..0.30).contains(&rtf), "rtf {rtf}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_body_has_its_first_audio_at_the_end_of_synthesis() {
    // Whole: 40 ms + 50 × 4 ms = 240 ms before any byte, then the complete file.
    let r = speak(sim(false), |_| {}).await;
    assert_eq!(r.stats.counters.succeeded, 4, "{:?}", errors(&r));
    assert_eq!(r.stats.tallies[metric::AUDIO_MS], 4 * 1000);
    let ttfa = r.stats.named[metric::TTFA].quantile(0.5);
    assert!(ttfa >= MS(240) && ttfa < MS(300), "ttfa {ttfa:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_pcm_is_timed_at_the_servers_rate_or_the_configured_one() {
    // 16 kHz PCM: with x-sample-rate, 1 s whatever the configured rate says.
    let pcm = |rate_header| TtsHttpSimConfig {
        sample_rate: 16_000,
        rate_header,
        ..sim(true)
    };
    let r = speak(pcm(true), |c| c.format = SpeechFormat::Pcm).await;
    assert_eq!(r.stats.counters.succeeded, 4, "{:?}", errors(&r));
    assert_eq!(r.stats.tallies[metric::AUDIO_MS], 4 * 1000);
    // Without the header the configured 24 kHz is taken: the same bytes play 2/3 s.
    let r = speak(pcm(false), |c| c.format = SpeechFormat::Pcm).await;
    assert_eq!(r.stats.tallies[metric::AUDIO_MS], 4 * 666);
    let r = speak(pcm(false), |c| {
        c.format = SpeechFormat::Pcm;
        c.sample_rate = 16_000;
    })
    .await;
    assert_eq!(r.stats.tallies[metric::AUDIO_MS], 4 * 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_refusals_are_grouped_with_its_message() {
    let r = speak(sim(true), |c| c.voice = "nobody".into()).await;
    assert_eq!(
        errors(&r),
        [(
            "http_status".to_owned(),
            "HTTP 400: Voice 'nobody' is not available for model 'kokoro'".to_owned(),
            4
        )]
    );
    let r = speak(sim(true), |c| c.model = "mystery".into()).await;
    assert_eq!(errors(&r)[0].1, "HTTP 404: Model 'mystery' not found");
}
