//! Scenario files and built-in presets: named sets of `loadkit run` flags in TOML.
//!
//! A scenario is a table under `[scenarios.NAME]` whose keys are `loadkit run`'s long flag names
//! (`rps = 25`, `max-in-flight = 100`, `duration = "2m"`). It is turned into flags placed
//! *before* the command line's own, and clap keeps the last occurrence, so flags given on the
//! command line override the file. Validation is therefore exactly the flags' validation.
//! Secrets come from `${ENV_VAR}` expansion, never literals: `api-key` is not a key, and
//! credential-looking headers must use `${...}`.

use std::collections::BTreeMap;
use std::path::Path;

use toml::{Table, Value};

/// The built-in presets, usable with no file: `loadkit run --scenario quick`.
pub const PRESETS: &str = include_str!("presets.toml");

/// One named scenario: its flags, sorted by key (their order does not matter).
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its name, `NAME` of `[scenarios.NAME]`.
    pub name: String,
    /// Its `description`, if it has one.
    pub description: Option<String>,
    /// Its flags (`--rps`, `25`, ...), sorted by key.
    pub flags: Vec<String>,
}

/// Headers whose values are credentials and must come from the environment.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "api-key",
    "proxy-authorization",
    "cookie",
];

/// Parses a scenario file. `known` lists the long flag names `loadkit run` accepts, `boolean`
/// those that take no value and `repeatable` those that may be given more than once (only they
/// take a list); `env` resolves `${VAR}`.
pub fn parse(
    text: &str,
    origin: &str,
    known: &[String],
    boolean: &[String],
    repeatable: &[String],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Scenario>, String> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        format!(
            "{origin}: {}",
            e.to_string()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .trim()
        )
    })?;
    let mut out = BTreeMap::new();
    for (key, value) in &table {
        if key != "scenarios" {
            return Err(format!(
                "{origin}:{}: unknown top-level key '{key}' (expected [scenarios.NAME] tables)",
                line_of(text, None, key)
            ));
        }
        let Value::Table(scenarios) = value else {
            return Err(format!(
                "{origin}: 'scenarios' must be a table of [scenarios.NAME] sections"
            ));
        };
        for (name, body) in scenarios {
            let Value::Table(body) = body else {
                return Err(format!(
                    "{origin}:{}: scenario '{name}' must be a table",
                    line_of(text, None, name)
                ));
            };
            let flags = Flags {
                known,
                boolean,
                repeatable,
            };
            let scenario = scenario(text, origin, name, body, &flags, env)?;
            out.insert(name.clone(), scenario);
        }
    }
    Ok(out)
}

/// The flag names [`parse`] was given.
#[derive(Clone, Copy)]
struct Flags<'a> {
    known: &'a [String],
    boolean: &'a [String],
    repeatable: &'a [String],
}

fn scenario(
    text: &str,
    origin: &str,
    name: &str,
    body: &Table,
    flags_of: &Flags<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, String> {
    let Flags {
        known,
        boolean,
        repeatable,
    } = *flags_of;
    let mut flags = Vec::new();
    let mut description = None;
    for (key, value) in body {
        let at = || format!("{origin}:{}", line_of(text, Some(name), key));
        if key == "description" {
            description = value.as_str().map(str::to_owned);
            continue;
        }
        if key == "api-key" || key == "api_key" {
            return Err(format!("{}: scenario '{name}': secrets never go in files; set api-key-env = \"VAR\" instead", at()));
        }
        if key == "token" {
            return Err(format!("{}: scenario '{name}': secrets never go in files; set token-env = \"VAR\", env-file or token-command instead", at()));
        }
        let flag = key.replace('_', "-");
        if !known.contains(&flag) || flag == "scenario" || flag == "file" {
            return Err(format!("{}: scenario '{name}': unknown key '{key}' (keys are `loadkit run` flag names, see --help)", at()));
        }
        if boolean.contains(&flag) {
            match value {
                Value::Boolean(true) => flags.push(format!("--{flag}")),
                Value::Boolean(false) => {}
                _ => {
                    return Err(format!(
                        "{}: scenario '{name}': '{key}' takes true or false",
                        at()
                    ))
                }
            }
            continue;
        }
        let values: Vec<String> = match (flag.as_str(), value) {
            ("header", Value::Table(headers)) => headers
                .iter()
                .map(|(k, v)| {
                    Ok(format!(
                        "{k}: {}",
                        scalar(v)
                            .ok_or_else(|| format!("{}: header '{k}' must be a string", at()))?
                    ))
                })
                .collect::<Result<_, String>>()?,
            (_, Value::Array(_)) if !repeatable.contains(&flag) => {
                return Err(format!(
                    "{}: scenario '{name}': '{key}' takes one value, not a list",
                    at()
                ))
            }
            (_, Value::Array(items)) => items
                .iter()
                .map(|v| {
                    scalar(v).ok_or_else(|| {
                        format!(
                            "{}: scenario '{name}': '{key}' must hold plain values",
                            at()
                        )
                    })
                })
                .collect::<Result<_, String>>()?,
            (_, v) => vec![scalar(v).ok_or_else(|| {
                format!(
                    "{}: scenario '{name}': '{key}' must be a string, number or list",
                    at()
                )
            })?],
        };
        for raw in values {
            if flag == "header" {
                check_secret_header(&raw)
                    .map_err(|e| format!("{}: scenario '{name}': {e}", at()))?;
            }
            let value =
                expand(&raw, env).map_err(|e| format!("{}: scenario '{name}': {e}", at()))?;
            flags.push(format!("--{flag}"));
            flags.push(value);
        }
    }
    Ok(Scenario {
        name: name.to_owned(),
        description,
        flags,
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn check_secret_header(raw: &str) -> Result<(), String> {
    let (name, value) = raw.split_once(':').unwrap_or((raw, ""));
    if SECRET_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str()) && !value.contains("${")
    {
        return Err(format!(
            "header '{}' carries a credential: take it from the environment, e.g. \"Bearer ${{API_TOKEN}}\"",
            name.trim()
        ));
    }
    Ok(())
}

/// Replaces every `${VAR}` with the variable's value; a missing variable is an error.
fn expand(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unclosed '${{' in '{raw}'"))?;
        let var = &rest[start + 2..start + end];
        if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("'${{{var}}}' is not an environment variable name"));
        }
        out.push_str(&env(var).ok_or_else(|| format!("environment variable {var} is not set"))?);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The 1-based line of `key` (inside `[scenarios.NAME]` when `section` is given), for messages.
fn line_of(text: &str, section: Option<&str>, key: &str) -> usize {
    let mut inside = section.is_none();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim().trim_matches('"');
            if let Some(name) = section {
                inside = header == format!("scenarios.{name}")
                    || header == format!("scenarios.\"{name}\"");
            }
            if section.is_none() && header.starts_with(key) {
                return i + 1;
            }
            continue;
        }
        if inside {
            let k = trimmed
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if k == key {
                return i + 1;
            }
        }
    }
    0
}

/// The flags of `scenario` with every `${VAR}` replaced by the environment's value.
pub fn resolve(scenario: &Scenario) -> Result<Vec<String>, String> {
    let env = |var: &str| std::env::var(var).ok();
    scenario
        .flags
        .iter()
        .map(|f| expand(f, &env).map_err(|e| format!("scenario '{}': {e}", scenario.name)))
        .collect()
}

/// Reads `path`, or the built-in presets when `path` is `None`. `${VAR}` references are kept as
/// written; [`resolve`] expands them for the one scenario that runs.
pub fn load(
    path: Option<&Path>,
    known: &[String],
    boolean: &[String],
    repeatable: &[String],
) -> Result<BTreeMap<String, Scenario>, String> {
    let env = |var: &str| Some(format!("${{{var}}}"));
    match path {
        None => parse(
            PRESETS,
            "built-in presets",
            known,
            boolean,
            repeatable,
            &env,
        ),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse(
                &text,
                &path.display().to_string(),
                known,
                boolean,
                repeatable,
                &env,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> (Vec<String>, Vec<String>) {
        let known = [
            "rps",
            "users",
            "duration",
            "header",
            "max-in-flight",
            "quiet",
            "prompt-words",
        ];
        (
            known.iter().map(|s| s.to_string()).collect(),
            vec!["quiet".to_owned()],
        )
    }

    fn check(text: &str) -> Result<BTreeMap<String, Scenario>, String> {
        let (k, b) = known();
        let env = |v: &str| (v == "TOKEN").then(|| "s3cret".to_owned());
        parse(text, "f.toml", &k, &b, &["header".to_owned()], &env)
    }

    #[test]
    fn scenarios_become_flags_sorted_by_key() {
        let s = check(
            "[scenarios.a]\ndescription = \"x\"\nrps = 25\nmax_in_flight = 100\nquiet = true\nduration = \"2m\"\nheader = { Authorization = \"Bearer ${TOKEN}\" }\n",
        )
        .unwrap();
        assert_eq!(
            s["a"].flags,
            [
                "--duration",
                "2m",
                "--header",
                "Authorization: Bearer s3cret",
                "--max-in-flight",
                "100",
                "--quiet",
                "--rps",
                "25"
            ]
        );
        assert_eq!(s["a"].description.as_deref(), Some("x"));
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_line() {
        let e = check("[scenarios.a]\nrps = 1\n\nrpss = 2\n").unwrap_err();
        assert_eq!(e, "f.toml:4: scenario 'a': unknown key 'rpss' (keys are `loadkit run` flag names, see --help)");
        // A list for a flag that takes one value was once silently the last item.
        let e = check("[scenarios.a]\nrps = [1, 2]\n").unwrap_err();
        assert!(e.contains("'rps' takes one value, not a list"), "{e}");
        let e = check("[other]\nx = 1\n").unwrap_err();
        assert!(e.contains("unknown top-level key 'other'"), "{e}");
    }

    #[test]
    fn secrets_must_come_from_the_environment() {
        let e = check("[scenarios.a]\nheader = [\"Authorization: Bearer abc\"]\n").unwrap_err();
        assert!(e.contains("carries a credential"), "{e}");
        let e = check("[scenarios.a]\napi-key = \"abc\"\n").unwrap_err();
        assert!(e.contains("secrets never go in files"), "{e}");
        let e = check("[scenarios.a]\ntoken = \"abc\"\n").unwrap_err();
        assert!(e.contains("set token-env"), "{e}");
        let e = check("[scenarios.a]\nheader = [\"X-Api-Key: ${MISSING}\"]\n").unwrap_err();
        assert!(e.contains("MISSING is not set"), "{e}");
    }

    #[test]
    fn bad_toml_is_one_clear_line() {
        let e = check("[scenarios.a\nrps = 1").unwrap_err();
        assert!(e.starts_with("f.toml: "), "{e}");
        assert!(!e.contains('\n'));
    }
}
