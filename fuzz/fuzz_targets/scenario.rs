//! The CLI's scenario-file parser (`loadkit_cli::scenario`: TOML to `loadkit run` flags, with
//! `${VAR}` expansion) on arbitrary text: every scenario is parsed and resolved, or the file is
//! one error line; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loadkit_cli::scenario;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let known: Vec<String> = [
        "rps", "users", "duration", "header", "max-in-flight", "quiet", "prompt-words", "url",
        "pattern", "insecure",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let boolean = vec!["quiet".to_owned(), "insecure".to_owned()];
    let env = |var: &str| (var.len() % 2 == 0).then(|| format!("v-{var}"));
    let repeatable = vec!["header".to_owned()];
    match scenario::parse(&text, "fuzz.toml", &known, &boolean, &repeatable, &env) {
        Ok(list) => {
            for s in list.values() {
                let _ = scenario::resolve(s);
            }
        }
        Err(e) => assert!(!e.contains('\n'), "more than one line: {e}"),
    }
});
