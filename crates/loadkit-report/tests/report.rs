//! The report built from a real (paused-clock) run: schema, values, round trip, terminal text.

use std::time::Duration;

use loadkit_core::metrics::ErrorKind;
use loadkit_core::schedule::ConstantRate;
use loadkit_core::{Client, Probe, RequestCtx, RequestError, Runner};
use loadkit_report::{render_summary, Report, RunMeta};

struct Fake;

impl Client for Fake {
    type Request = u64;
    type Session = ();

    async fn call(&self, _: &mut (), seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if seq % 10 == 9 {
            return Err(RequestError::new(
                ErrorKind::HttpStatus(503),
                "HTTP 503: Too many concurrent requests",
            ));
        }
        probe.mark_first_byte();
        for i in 0..5 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            probe.content(1, 3);
        }
        probe.usage(Some(12), Some(5));
        probe.server_timing("server_eval", Duration::from_millis(40));
        Ok(())
    }
}

async fn report() -> Report {
    let result = Runner::builder(Fake, |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(Duration::from_secs(3))
        .build()
        .unwrap()
        .run()
        .await;
    let meta = RunMeta {
        protocol: "openai-chat".into(),
        target: "http://127.0.0.1:1/v1/chat/completions".into(),
        model: Some("sim".into()),
        seed: Some(7),
        ..RunMeta::default()
    };
    Report::from_run(&result, meta)
}

#[tokio::test(start_paused = true)]
async fn the_json_report_follows_the_schema() {
    let r = report().await;
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["schema_version"], 1);
    for key in [
        "run",
        "totals",
        "throughput",
        "tokens",
        "metrics",
        "errors",
        "timeline",
        "generator",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["run"]["pattern"]["kind"], "constant");
    assert_eq!(json["run"]["pattern"]["rps"], 10.0);
    assert_eq!(json["run"]["stop_reason"], "duration");
    assert_eq!(json["run"]["interrupted"], false);
    assert_eq!(json["totals"]["requests"], 30);
    assert_eq!(json["totals"]["succeeded"], 27);
    assert_eq!(json["totals"]["failed"], 3);
    assert_eq!(json["tokens"]["source"], "server");
    assert_eq!(json["tokens"]["output_total"], 27 * 5);
    assert_eq!(json["tokens"]["input_total"], 27 * 12);
    for name in [
        "ttft",
        "ttft_corrected",
        "itl",
        "tpot",
        "e2e",
        "e2e_corrected",
        "schedule_lag",
    ] {
        let m = &json["metrics"][name];
        assert_eq!(m["unit"], "ms", "{name}");
        assert!(m["hdr"].as_str().unwrap().len() > 10, "{name}");
    }
    let ttft = json["metrics"]["ttft"]["p50"].as_f64().unwrap();
    // Never early; a busy 2-core machine running client and server adds up to 10 ms (another build or benchmark running beside the tests).
    assert!((49.5..=60.0).contains(&ttft), "{ttft}");
    let itl = json["metrics"]["itl"]["p50"].as_f64().unwrap();
    assert!((itl - 10.0).abs() < 1.0, "{itl}");
    assert_eq!(json["errors"][0]["class"], "http_status");
    assert_eq!(json["errors"][0]["count"], 3);
    assert_eq!(json["timeline"].as_array().unwrap().len(), 3);
    assert_eq!(json["timeline"][0]["started"], 10);
}

#[tokio::test(start_paused = true)]
async fn reports_round_trip_and_histograms_decode() {
    let r = report().await;
    let back = Report::from_json(&r.to_json()).unwrap();
    assert_eq!(back, r);
    let h = loadkit_core::metrics::Histogram::from_base64(&back.metrics["e2e"].hdr).unwrap();
    assert_eq!(h.count(), 27);
    let newer = r
        .to_json()
        .replacen("\"schema_version\": 1", "\"schema_version\": 99", 1);
    assert!(Report::from_json(&newer)
        .unwrap_err()
        .to_string()
        .contains("newer"));
}

#[tokio::test(start_paused = true)]
async fn the_terminal_summary_shows_requests_latencies_and_grouped_errors() {
    let text = render_summary(&report().await);
    assert!(
        text.contains("30 sent · 27 ok · 3 failed (90.0 % success)"),
        "{text}"
    );
    assert!(
        text.contains("[3x] HTTP 503: Too many concurrent requests"),
        "{text}"
    );
    let ttft = text.lines().find(|l| l.starts_with("TTFT ")).unwrap();
    assert!(ttft.contains("50."), "{ttft}");
    let server = text
        .lines()
        .find(|l| l.starts_with("server_eval "))
        .expect("server timings shown");
    assert!(server.contains("40.0"), "{server}");
    for label in ["ITL", "TPOT", "E2E"] {
        assert!(
            text.lines().any(|l| l.starts_with(label)),
            "{label} row missing:\n{text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_normal_report_passes_its_own_consistency_checks() {
    let r = report().await;
    assert!(r.consistency.passed, "{:#?}", r.consistency);
    assert!(r.consistency.checks.len() >= 12);
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["consistency"]["passed"], true);
}

#[tokio::test(start_paused = true)]
async fn a_corrupted_report_fails_the_checks_that_see_it() {
    let r = report().await;
    let mut json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    json["totals"]["succeeded"] = serde_json::json!(26);
    json["timeline"][1]["started"] = serde_json::json!(11);
    json["throughput"]["output_tokens_per_s"] = serde_json::json!(50.0);
    let corrupted = Report::from_json(&json.to_string()).unwrap();
    let checked = loadkit_report::Consistency::check(&corrupted);
    assert!(!checked.passed);
    let failed: Vec<&str> = checked.failures().map(|c| c.name.as_str()).collect();
    for name in [
        "outcomes",
        "e2e_count",
        "request_rate",
        "token_rate",
        "timeline_started",
        "timeline_completed",
    ] {
        assert!(failed.contains(&name), "{name} not among {failed:?}");
    }
    let mut shown = corrupted.clone();
    shown.consistency = checked;
    let text = render_summary(&shown);
    assert!(
        text.contains("WARNING     consistency check outcomes failed: requests = succeeded + failed + cancelled + in flight (checkpoints): 30 ≠ 29"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_run_says_how_many_arrivals_never_started_and_still_adds_up() {
    let result = Runner::builder(Fake, |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(100.0).unwrap())
        .warmup(Duration::from_secs(1))
        .duration(Duration::from_secs(3))
        .max_in_flight(2)
        .build()
        .unwrap()
        .run()
        .await;
    let r = Report::from_run(&result, RunMeta::default());
    assert!(r.consistency.passed, "{:#?}", r.consistency);
    let t = &r.totals;
    assert_eq!(t.missed, t.missed_by_reason.queued_at_stop);
    assert_eq!(t.requests + t.missed, 300, "{t:?}");
    assert_eq!(t.warmup + t.warmup_outcomes.missed, 100, "{t:?}");
    let text = render_summary(&r);
    let line = text.lines().find(|l| l.starts_with("Unsent")).unwrap();
    assert!(
        line.contains(&format!(
            "{} arrivals never started: {} still queued at the in-flight cap when the run stopped",
            t.missed, t.missed
        )),
        "{line}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_busy_on_every_core_is_marked_generator_limited() {
    let result = Runner::builder(Fake, |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(Duration::from_secs(3))
        .build()
        .unwrap()
        .run()
        .await;
    let busy = RunMeta {
        cpu_s: Some(5.9),
        client_cores: Some(2),
        ..RunMeta::default()
    };
    let r = Report::from_run(&result, busy);
    assert!(r.generator.limited);
    let reason = r.generator.limited_reason.clone().unwrap();
    assert!(
        reason.contains("client CPU at 98 % of 2 core(s)"),
        "{reason}"
    );
    assert!(render_summary(&r).contains("WARNING     generator-limited: client CPU"));
    let idle = RunMeta {
        cpu_s: Some(0.3),
        client_cores: Some(2),
        ..RunMeta::default()
    };
    assert!(!Report::from_run(&result, idle).generator.limited);
}

#[tokio::test(start_paused = true)]
async fn tpot_of_one_chunk_answers_shows_a_dash() {
    struct OneChunk;
    impl Client for OneChunk {
        type Request = u64;
        type Session = ();
        async fn call(&self, _: &mut (), _: u64, probe: &mut Probe) -> Result<(), RequestError> {
            tokio::time::sleep(Duration::from_millis(30)).await;
            probe.content(16, 64);
            Ok(())
        }
    }
    let result = Runner::builder(OneChunk, |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(Duration::from_secs(1))
        .build()
        .unwrap()
        .run()
        .await;
    let r = Report::from_run(&result, RunMeta::default());
    assert_eq!(r.metrics["tpot"].count, 0);
    let text = render_summary(&r);
    let tpot = text.lines().find(|l| l.starts_with("TPOT")).unwrap();
    assert!(tpot.contains('–') && !tpot.contains("0.00"), "{tpot}");
}

#[tokio::test(start_paused = true)]
async fn settings_repeating_a_run_field_still_read_back() {
    let result = Runner::builder(Fake, |ctx: &RequestCtx| ctx.seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .requests(3)
        .build()
        .unwrap()
        .run()
        .await;
    // As the speech protocols report the model they resolved.
    let settings = serde_json::json!({"model": "whisper-1", "language": "en", "seed": 3});
    let meta = RunMeta {
        protocol: "asr".into(),
        target: "http://127.0.0.1:1/v1/audio/transcriptions".into(),
        settings: settings.as_object().unwrap().clone(),
        ..RunMeta::default()
    };
    let r = Report::from_run(&result, meta.clone());
    let text = r.to_json();
    assert_eq!(text.matches("\"model\"").count(), 1, "{text}");
    let back = Report::from_json(&text).unwrap();
    assert_eq!(back.run.model.as_deref(), Some("whisper-1"));
    assert_eq!(back.run.settings["language"], "en");
    // A model given by the user wins over the one the protocol resolved.
    let given = RunMeta {
        model: Some("large-v3".into()),
        ..meta
    };
    let r = Report::from_run(&result, given);
    assert_eq!(
        Report::from_json(&r.to_json())
            .unwrap()
            .run
            .model
            .as_deref(),
        Some("large-v3")
    );
}
