//! loadkit-ws's message decoder (`MessageRules::message`, what every text or binary frame of a
//! `ws-chat` response goes through) on arbitrary bytes, under the default rules and under rules
//! with nested pointers, counts and an error rule: a step or a classified error, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loadkit_core::Probe;
use loadkit_ws::{MessageRules, WsChatConfig};

fn rules() -> &'static [MessageRules; 2] {
    static RULES: OnceLock<[MessageRules; 2]> = OnceLock::new();
    RULES.get_or_init(|| {
        let default = WsChatConfig::new("ws://127.0.0.1:1/ws");
        let mut custom = WsChatConfig::new("ws://127.0.0.1:1/ws");
        custom.token_when = "/data/kind=delta".into();
        custom.token_text = "/data/text".into();
        custom.end_when = "/data/done=true".into();
        custom.error_when = Some("/err".into());
        custom.error_text = "/err/message".into();
        custom.tokens_in = Some("/usage/in".into());
        custom.tokens_out = Some("/usage/out".into());
        [
            MessageRules::new(&default).expect("the default rules parse"),
            MessageRules::new(&custom).expect("these rules parse"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    for rules in rules() {
        let _ = rules.message(data, &mut Probe::standalone());
    }
});
