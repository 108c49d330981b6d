//! Property tests of the WebSocket message decoder (short: 256 cases each; `fuzz/` runs
//! longer): arbitrary bytes, and arbitrary JSON-shaped messages, are a step or a classified
//! error under the default rules and under rules with counts and errors, never a panic.

use loadkit_core::Probe;
use loadkit_ws::{MessageRules, WsChatConfig};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn rules() -> [MessageRules; 2] {
    let default = MessageRules::new(&WsChatConfig::new("ws://127.0.0.1:1/ws")).unwrap();
    let mut custom = WsChatConfig::new("ws://127.0.0.1:1/ws");
    custom.token_when = "/data/kind=delta".into();
    custom.token_text = "/data/text".into();
    custom.end_when = "/data/done=true".into();
    custom.error_when = Some("/err".into());
    custom.error_text = "/err/message".into();
    custom.tokens_in = Some("/usage/in".into());
    custom.tokens_out = Some("/usage/out".into());
    [default, MessageRules::new(&custom).unwrap()]
}

fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "\\{\"type\":\"(token|done|error)\",\"text\":(\"[^\"]{0,8}\"|[0-9]{1,3}|null|\\[\\]|\\{\\}),\"tokens_out\":-?[0-9.e]{0,4}\\}",
        "\\{\"data\":\\{\"kind\":\"delta\",\"text\":\"(\\\\u[0-9a-fA-F]{4}|\\\\.|[a-z]){0,6}\"\\},\"usage\":\\{\"in\":[0-9-]{1,3}\\}\\}",
        "\\{\"err\":(\\{\"message\":\"[a-z]{0,4}\"\\}|[0-9]|\"x\")\\}",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic_the_message_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for rules in rules() {
            let _ = rules.message(&bytes, &mut Probe::standalone());
        }
    }

    #[test]
    fn json_shaped_messages_never_panic_the_message_decoder(text in message()) {
        for rules in rules() {
            let _ = rules.message(text.as_bytes(), &mut Probe::standalone());
        }
    }
}
