//! The parser and the kinds' tables against recorded `/metrics` bodies of real servers
//! (`fixtures/SOURCES.md` says where each came from) and a hand-made malformed one.

use loadkit_scrape::{text, Kind, Role};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Reads every series of `kind` from two scrapes of the same body (so rates and interval means,
/// which need a previous scrape, have one): the role → (key, value of the second read).
fn read_twice(kind: Kind, body: &str) -> Vec<(Role, String, Option<String>, Option<f64>)> {
    let e = text::parse(body);
    let mut series = kind.series();
    for s in &mut series {
        s.read(&e, 0.0);
    }
    series
        .iter_mut()
        .map(|s| {
            let v = s.read(&e, 1.0);
            (s.role, s.key.clone(), s.source.clone(), v)
        })
        .collect()
}

#[test]
fn vllm_v1_body_is_read_whole() {
    let body = fixture("vllm.txt");
    let e = text::parse(&body);
    assert!(e.rejected.is_empty(), "{:?}", e.rejected);
    assert!(e.samples.len() > 300, "{} samples", e.samples.len());
    assert_eq!(Kind::detect(&e), Kind::Vllm);
    let read = read_twice(Kind::Vllm, &body);
    let found: Vec<Role> = read.iter().filter(|r| r.2.is_some()).map(|r| r.0).collect();
    assert_eq!(
        found,
        vec![
            Role::Running,
            Role::Waiting,
            Role::KvCache,
            Role::PromptTokens,
            Role::GenerationTokens,
            Role::QueueTime
        ]
    );
    // V1 renamed the KV-cache gauge; the table reads the new name.
    assert_eq!(read[2].2.as_deref(), Some("vllm:kv_cache_usage_perc"));
    // An idle server: zero running, zero tokens per second, no request dequeued (no mean).
    assert_eq!(read[0].3, Some(0.0));
    assert_eq!(read[3].3, Some(0.0));
    assert_eq!(read[5].3, None);
}

#[test]
fn sglang_body_is_read_and_its_missing_queue_histogram_named() {
    let body = fixture("sglang.txt");
    let e = text::parse(&body);
    assert!(e.rejected.is_empty(), "{:?}", e.rejected);
    assert_eq!(Kind::detect(&e), Kind::Sglang);
    let read = read_twice(Kind::Sglang, &body);
    assert_eq!(read[0].3, Some(162.0), "running");
    assert_eq!(read[1].3, Some(2826.0), "queued");
    let kv = read[2].3.expect("token usage");
    assert!((0.0..=1.0).contains(&kv), "{kv}");
    let missing: Vec<&str> = read
        .iter()
        .filter(|r| r.2.is_none())
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(missing, vec!["sglang:queue_time_seconds"]);
}

#[test]
fn llama_server_body_is_read() {
    let body = fixture("llama-server.txt");
    let e = text::parse(&body);
    assert!(e.rejected.is_empty(), "{:?}", e.rejected);
    assert_eq!(Kind::detect(&e), Kind::LlamaServer);
    let read = read_twice(Kind::LlamaServer, &body);
    let by_key = |k: &str| read.iter().find(|r| r.1 == k).unwrap();
    // Captured with two requests on the two slots and three deferred.
    assert_eq!(by_key("llamacpp:requests_processing").3, Some(2.0));
    assert_eq!(by_key("llamacpp:requests_deferred").3, Some(3.0));
    assert_eq!(by_key("llamacpp:tokens_predicted_total").3, Some(0.0));
    // This build has no KV-cache gauge: named missing, not zero.
    let kv = by_key("llamacpp:kv_cache_usage_ratio");
    assert_eq!((kv.2.as_deref(), kv.3), (None, None));
}

#[test]
fn tgi_body_is_read() {
    let body = fixture("tgi.txt");
    let e = text::parse(&body);
    assert!(e.rejected.is_empty(), "{:?}", e.rejected);
    assert_eq!(Kind::detect(&e), Kind::Tgi);
    let read = read_twice(Kind::Tgi, &body);
    for r in &read {
        assert!(r.2.is_some(), "{} missing", r.1);
    }
    // The scripted end state: four in the batch, three queued.
    assert_eq!(read[0].3, Some(4.0), "running");
    assert_eq!(read[1].3, Some(3.0), "queued");
}

#[test]
fn malformed_lines_are_rejected_one_by_one_and_the_good_ones_kept() {
    let e = text::parse(&fixture("malformed.txt"));
    let rejected: Vec<usize> = e.rejected.iter().map(|r| r.line).collect();
    // Line 7 is a second TYPE for one family (the first stays); 10–13 and 18 are broken samples.
    assert_eq!(rejected, vec![7, 10, 11, 12, 13, 18], "{:?}", e.rejected);
    assert_eq!(e.samples.len(), 6);
    assert_eq!(
        e.type_of("vllm:num_requests_waiting"),
        Some(text::MetricType::Gauge)
    );
    let mut series = Kind::Vllm.series();
    let running = series[0].read(&e, 0.0);
    let waiting = series[1].read(&e, 0.0);
    assert_eq!(
        running,
        Some(3.0),
        "engines 0 and 1 summed, the timestamped line included"
    );
    assert_eq!(
        waiting,
        Some(2.0),
        "labels in another order are the same series"
    );
    // A series whose only line was broken is missing, not zero.
    assert_eq!(series[2].read(&e, 0.0), None);
    assert_eq!(series[2].source, None);
}
