//! Reading a message with the default rules allocates nothing, escaped token text included:
//! token, status and `done` messages through the real `MessageRules` and `Probe`, with every
//! heap allocation of the test's thread counted. A test binary of its own, so
//! allocation-counter's global allocator is installed in no other.

use loadkit_core::Probe;
use loadkit_ws::{MessageRules, Step, WsChatConfig};

/// Token texts as a Python server sends them (`json.dumps`, `ensure_ascii=True`).
const TEXTS: [&str; 6] = [
    r"\n\n",
    r"line\nline\n",
    r"\u4f60\u597d\u4e16\u754c",
    r"\ud83d\ude00 ok\n",
    r#"caf\u00e9 \"q\" \\ \/ \t\r"#,
    "plain",
];

fn message(i: usize) -> Vec<u8> {
    match i % 8 {
        6 => br#"{"type":"status","queue_position":3,"eta_ms":120.5,"note":null}"#.to_vec(),
        7 => br#"{"type":"done","tokens_in":12,"tokens_out":64,"finish_reason":"stop"}"#.to_vec(),
        n => format!(
            r#"{{"type":"token","text":"{}","index":{i}}}"#,
            TEXTS[n % TEXTS.len()]
        )
        .into_bytes(),
    }
}

#[test]
fn reading_messages_allocates_nothing_after_warm_up() {
    let messages: Vec<Vec<u8>> = (0..1_200).map(message).collect();
    // The probe keeps inter-chunk gaps by histogram bucket and allocates when a new bucket
    // appears (its documented behaviour); on the paused clock every gap is 0, one bucket, so
    // what is counted is the rules alone.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _clock = runtime.enter();
    let rules = MessageRules::new(&WsChatConfig::new("ws://127.0.0.1:9/ws")).unwrap();
    let mut probe = Probe::standalone();
    let mut ends = 0;
    let mut feed = |messages: &[Vec<u8>], probe: &mut Probe| {
        for m in messages {
            if rules.message(m, probe).expect("a valid message") == Step::End {
                ends += 1;
            }
        }
    };
    feed(&messages[..120], &mut probe);
    let counted = allocation_counter::measure(|| feed(&messages[120..], &mut probe));
    assert_eq!(probe.content_chunks(), 1_200 / 8 * 6);
    assert_eq!(ends, 1_200 / 8);
    assert_eq!(counted.count_total, 0, "{counted:?}");
    // What the docs say allocates: serde_json skipping an object or array inside the message,
    // once per message.
    let nested = br#"{"type":"token","text":"a","meta":{"queue":3}}"#;
    let counted = allocation_counter::measure(|| {
        rules.message(nested, &mut probe).unwrap();
    });
    assert_eq!(counted.count_total, 1, "{counted:?}");
    // The counter is live: a Box counts.
    let boxed = allocation_counter::measure(|| drop(std::hint::black_box(Box::new(1u64))));
    assert_eq!(boxed.count_total, 1);
}
