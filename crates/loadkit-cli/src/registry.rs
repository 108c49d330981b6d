//! The protocols `loadkit` speaks, listed in one place, and how their options become flags.
//!
//! Adding a protocol: a crate implementing `loadkit_core::protocol::Protocol`, and one line in
//! [`PROTOCOLS`]. Nothing else in the CLI names a protocol.

use std::collections::BTreeMap;

use clap::builder::PossibleValue;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};
use loadkit_core::protocol::{OptionSpec, Options, Protocol};

use crate::Fatal;

/// Every protocol, in `--help` order.
pub(crate) const PROTOCOLS: &[&dyn Protocol] = &[
    &loadkit_openai::protocol::OPENAI,
    &loadkit_ollama::protocol::OLLAMA,
    &loadkit_sse::protocol::GENERIC,
    &loadkit_ws::protocol::WS_CHAT,
    &loadkit_tts_ws::protocol::TTS_WS,
    &loadkit_openai::protocol::TTS_HTTP,
    &loadkit_asr_multipart::protocol::ASR,
];

/// The `--protocol` values, with their help.
pub(crate) fn names() -> Vec<PossibleValue> {
    PROTOCOLS
        .iter()
        .flat_map(|p| p.names())
        .map(|n| PossibleValue::new(n.name).help(n.about))
        .collect()
}

/// The protocol that answers to `name`, and the name as it declares it.
pub(crate) fn find(name: &str) -> Result<(&'static dyn Protocol, &'static str), Fatal> {
    PROTOCOLS
        .iter()
        .find_map(|p| {
            p.names()
                .iter()
                .find(|n| n.name == name)
                .map(|n| (*p, n.name))
        })
        .ok_or_else(|| Fatal::usage(format!("unknown protocol '{name}'")))
}

/// Every protocol option by long name, with the protocol names that accept it.
fn options() -> BTreeMap<&'static str, (&'static OptionSpec, Vec<&'static str>)> {
    let mut all: BTreeMap<&'static str, (&'static OptionSpec, Vec<&'static str>)> = BTreeMap::new();
    for protocol in PROTOCOLS {
        for spec in protocol.options() {
            let entry = all.entry(spec.long).or_insert((spec, Vec::new()));
            for name in protocol.names() {
                if spec.accepted_by(name.name) {
                    entry.1.push(name.name);
                }
            }
        }
    }
    all
}

/// Adds every protocol's options to `loadkit run` as flags (one flag per long name, whichever
/// protocols declare it), each with a help line saying which protocols take it.
pub(crate) fn augment(run: clap::Command) -> clap::Command {
    let mut run = run;
    for (long, (spec, accepted)) in options() {
        let mut help = spec.help.to_owned();
        if let Some(default) = spec.default {
            help.push_str(&format!(" [default: {default}]"));
        }
        let mut arg = Arg::new(long)
            .long(long)
            .help(help)
            .help_heading(format!("Protocol options: {}", accepted.join(", ")));
        arg = match spec.value {
            None => arg.action(ArgAction::SetTrue),
            Some(value) if spec.repeat => arg.value_name(value).action(ArgAction::Append),
            Some(value) => arg
                .value_name(value)
                .action(ArgAction::Set)
                .allow_hyphen_values(true),
        };
        run = run.arg(arg);
    }
    run
}

/// The options given on the command line (or by a scenario), by long name.
pub(crate) fn given(matches: &ArgMatches) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (long, (spec, _)) in options() {
        if matches.value_source(long) != Some(ValueSource::CommandLine) {
            continue;
        }
        let values = match spec.value {
            None => Vec::new(),
            Some(_) => matches
                .get_many::<String>(long)
                .map(|v| v.cloned().collect())
                .unwrap_or_default(),
        };
        out.push((long.to_owned(), values));
    }
    out
}

/// `true` when the protocol named `name` takes the option `--long`.
pub(crate) fn accepts(name: &str, long: &str) -> bool {
    options()
        .get(long)
        .is_some_and(|(_, names)| names.contains(&name))
}

/// The options for `name` of `protocol`; a given option it does not accept is a usage error
/// naming the protocols that do.
pub(crate) fn options_for(
    protocol: &dyn Protocol,
    name: &str,
    given: &[(String, Vec<String>)],
) -> Result<Options, Fatal> {
    let all = options();
    let mut options = Options::new(protocol.options());
    for (long, values) in given {
        let accepted = all
            .get(long.as_str())
            .map(|(_, a)| a.as_slice())
            .unwrap_or(&[]);
        if !accepted.contains(&name) {
            return Err(Fatal::usage(format!(
                "--{long} applies to --protocol {}, not {name}",
                accepted.join(", ")
            )));
        }
        options
            .give(long, values.clone())
            .map_err(|e| Fatal::usage(e.to_string()))?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_across_protocols() {
        let names: Vec<_> = names().iter().map(|v| v.get_name().to_owned()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
    }

    #[test]
    fn an_option_declared_twice_is_declared_alike() {
        let mut seen: BTreeMap<&str, &OptionSpec> = BTreeMap::new();
        for p in PROTOCOLS {
            for spec in p.options() {
                if let Some(first) = seen.insert(spec.long, spec) {
                    assert_eq!(
                        (first.value, first.repeat),
                        (spec.value, spec.repeat),
                        "--{} is declared two ways",
                        spec.long
                    );
                }
            }
        }
    }
}
