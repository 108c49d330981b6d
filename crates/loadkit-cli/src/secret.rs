//! Session tokens: found once before the load (a flag, an environment variable, a `.env`-style
//! file, or a command such as an auth provider's CLI), sent as a query parameter or a header by
//! every protocol, and kept out of every output (reports, summaries, errors, logs).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use clap::ValueEnum;

use crate::args::TargetArgs;
use crate::Fatal;

/// Where the token goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TokenIn {
    /// A query parameter of the target URL (`--token-param`, default `token`), as WebSocket
    /// servers take it (browsers cannot set headers on a WebSocket).
    Query,
    /// A header (`--token-header`, default `Authorization: Bearer TOKEN`; another header name
    /// gets the bare token).
    Header,
}

/// Shortest secret redacted from output (shorter ones would mangle ordinary text).
const REDACT_MIN: usize = 4;

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Marks `secret` (and its URL-encoded form) as never to be printed or written.
pub(crate) fn register(secret: &str) {
    if secret.len() >= REDACT_MIN {
        let mut all = secrets().lock().unwrap_or_else(|e| e.into_inner());
        all.push(secret.to_owned());
        let encoded = encode(secret);
        if encoded != secret {
            all.push(encoded);
        }
    }
}

/// `text` with every registered secret replaced by `***`.
pub(crate) fn redact(text: &str) -> String {
    let all = secrets().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for secret in all.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

/// Standard error with every registered secret redacted: where the logs (`-v`) go, so a
/// request URL logged at debug level does not show its token.
#[derive(Debug)]
pub(crate) struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = redact(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved characters kept).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token the flags point at, if any; one line naming the flag when it cannot be found.
pub(crate) fn token(args: &TargetArgs) -> Result<Option<String>, Fatal> {
    let token = if let Some(t) = &args.token {
        Some(t.clone())
    } else if let Some(var) = &args.token_env {
        let value = std::env::var(var).map_err(|_| {
            Fatal::usage(format!(
                "--token-env {var}: the environment variable is not set"
            ))
        })?;
        Some(value)
    } else if let Some(file) = &args.env_file {
        Some(from_env_file(file, &args.token_key)?)
    } else if let Some(cmd) = &args.token_command {
        Some(from_command(cmd)?)
    } else {
        None
    };
    match token.map(|t| t.trim().to_owned()) {
        Some(t) if t.is_empty() => Err(Fatal::usage("the token is empty (--token...)")),
        Some(t) => {
            register(&t);
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

/// `KEY=VALUE` lines (blank lines, `#` comments and an `export ` prefix allowed; values may be
/// quoted); the value of `key`.
fn from_env_file(path: &Path, key: &str) -> Result<String, Fatal> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fatal::usage(format!("--env-file {}: {e}", path.display())))?;
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() == key {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            return Ok(unquoted.to_owned());
        }
    }
    Err(Fatal::usage(format!(
        "--env-file {}: no {key}=... line (choose the key with --token-key)",
        path.display()
    )))
}

/// Runs `cmd` with `sh -c` once; its first line of output is the token. Its output is never
/// shown; its error output's first line is, when it fails.
fn from_command(cmd: &str) -> Result<String, Fatal> {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Fatal::usage(format!("--token-command: cannot run sh: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(Fatal::usage(format!(
            "--token-command failed ({}){}{}",
            out.status,
            if first.is_empty() { "" } else { ": " },
            first
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return Err(Fatal::usage("--token-command printed no token"));
    }
    Ok(first.to_owned())
}

/// Puts `token` where `--token-in` says: on `url` as a query parameter, or in `headers`.
pub(crate) fn apply(
    args: &TargetArgs,
    token: &str,
    url: &mut String,
    headers: &mut Vec<(String, String)>,
) {
    match args.token_in {
        TokenIn::Query => {
            let (base, fragment) = match url.split_once('#') {
                Some((b, f)) => (b.to_owned(), Some(f.to_owned())),
                None => (url.clone(), None),
            };
            let sep = if base.contains('?') { '&' } else { '?' };
            *url = format!(
                "{base}{sep}{}={}{}",
                encode(&args.token_param),
                encode(token),
                fragment.map(|f| format!("#{f}")).unwrap_or_default()
            );
        }
        TokenIn::Header => {
            let name = args.token_header.clone();
            let value = if name.eq_ignore_ascii_case("authorization") {
                format!("Bearer {token}")
            } else {
                token.to_owned()
            };
            headers.push((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_take_comments_exports_and_quotes() {
        let dir = std::env::temp_dir().join(format!("loadkit-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(".env");
        std::fs::write(
            &file,
            "# creds\nexport USER=me\nSESSION_TOKEN=\"abc def\"\nTOKEN='t0ken'\n",
        )
        .unwrap();
        assert_eq!(from_env_file(&file, "SESSION_TOKEN").unwrap(), "abc def");
        assert_eq!(from_env_file(&file, "TOKEN").unwrap(), "t0ken");
        let e = from_env_file(&file, "NOPE").unwrap_err().error.to_string();
        assert!(e.contains("no NOPE=... line"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn commands_give_their_first_line_and_failures_one_line() {
        assert_eq!(from_command("printf 'tok-1\\nmore'").unwrap(), "tok-1");
        let e = from_command("echo nope >&2; exit 3")
            .unwrap_err()
            .error
            .to_string();
        assert!(
            e.contains("--token-command failed") && e.contains("nope"),
            "{e}"
        );
        assert!(from_command("true").is_err());
    }

    #[test]
    fn redaction_covers_the_raw_and_encoded_forms() {
        register("s3cr3t/+=x");
        let text = "ws://h/ws?token=s3cr3t%2F%2B%3Dx and s3cr3t/+=x";
        assert_eq!(redact(text), "ws://h/ws?token=*** and ***");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
