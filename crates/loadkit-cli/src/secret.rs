//! Secrets: session tokens found once before the load (a flag, an environment variable, a
//! `.env`-style file, or a command such as an auth provider's CLI) and sent as a query parameter
//! or a header by every protocol, the API key, the values of credential headers (`--header
//! 'Authorization: ...'`, `Cookie`, `X-Api-Key`, any header whose name has `token`, `secret`,
//! `key`, `auth`, `password` or `cookie` in it), a URL's userinfo password and its credential
//! query parameters (`token`, `key`, `api_key`, `access_token`, `sig`, ...). None of them
//! reaches an output: the terminal, reports, logs, Prometheus labels and error messages all go
//! through [`redact`], which writes `***` instead.
//!
//! What is replaced, and why:
//!
//! - A registered secret of 4 bytes or more is replaced wherever it appears, in each form it can
//!   take in an output: as given, percent-encoded (a URL), JSON-escaped (a secret with `"` or
//!   `\` inside report.json), and JSON-escaped twice (a server's JSON error body quoted inside
//!   report.json).
//! - A registered secret of 1 to 3 bytes is replaced only where it stands as a whole value: after
//!   `=`, `:`, `Bearer ` / `Basic ` / `Token `, or between quotes, and not inside a longer word.
//!   Replacing every `ab` in every output would mangle numbers, words and base64 histograms and
//!   say nothing about the secret that a reader could not guess; a whole value is where such a
//!   secret shows up (`?sig=ab`, `token: ab`, `"ab"`).
//! - Whatever was registered, the structure of a URL is redacted in every output: the value of
//!   any query parameter with a credential name (`?token=***&model=m`) and the password of a
//!   userinfo (`http://user:***@host`), whatever their length, so a URL a server echoes back
//!   with a credential of its own is hidden too.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// Shortest secret replaced wherever it appears; shorter ones only as whole values.
const REDACT_ANYWHERE: usize = 4;

fn secrets() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Marks `secret` (and its percent-encoded and JSON-escaped forms) as never to be printed or
/// written. Blank text is ignored.
pub(crate) fn register(secret: &str) {
    if secret.trim().is_empty() {
        return;
    }
    let mut forms = vec![secret.to_owned(), encode(secret)];
    let json = json_escaped(secret);
    forms.push(json_escaped(&json));
    forms.push(json);
    let mut all = secrets().lock().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !all.contains(&form) {
            all.push(form);
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    all.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` inside a JSON string, without the quotes.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_owned()
}

/// Whether a header of this name carries a credential (its value is registered).
pub(crate) fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "secret", "key", "auth", "password", "cookie"]
        .iter()
        .any(|word| name.contains(word))
}

/// Whether a query parameter of this name carries a credential.
pub(crate) fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "key",
        "apikey",
        "api-key",
        "auth",
        "sig",
        "signature",
        "pass",
        "pwd",
        "code",
        "session",
        "sessionid",
        "jwt",
        "credential",
        "x-amz-credential",
    ];
    EXACT.contains(&name.as_str())
        || [
            "token",
            "secret",
            "password",
            "api_key",
            "apikey",
            "signature",
        ]
        .iter()
        .any(|word| name.contains(word))
        || name.ends_with("_key")
        || name.ends_with("-key")
        || name.ends_with("_sig")
}

/// Registers the credentials among `headers`: the whole value of each credential header, the
/// credential after an auth scheme (`Bearer X`), and each value of a `Cookie`.
pub(crate) fn register_headers(headers: &[(String, String)]) {
    for (name, value) in headers {
        if !is_secret_header(name) {
            continue;
        }
        register(value);
        if let Some((scheme, credential)) = value.trim().split_once(' ') {
            if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
                register(credential.trim());
            }
        }
        if name.to_ascii_lowercase().contains("cookie") {
            for pair in value.split(';') {
                if let Some((_, v)) = pair.split_once('=') {
                    register(v.trim());
                }
            }
        }
    }
}

/// Registers the credentials in `url`: its userinfo password and its credential query
/// parameters (each as written and percent-decoded).
pub(crate) fn register_url(url: &str) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if let Some((_, password)) = userinfo.split_once(':') {
            register(password);
            register(&decode(password));
        }
    }
    let Some((_, query)) = url.split_once('?') else {
        return;
    };
    let query = query.split('#').next().unwrap_or("");
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=') {
            if is_secret_param(&decode(name)) {
                register(value);
                register(&decode(value));
            }
        }
    }
}

/// Percent-decodes `text` (`+` left as is); invalid escapes are kept.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every registered secret replaced by `***` (see the module's documentation for
/// what is replaced where), and every URL's credentials redacted.
pub(crate) fn redact(text: &str) -> String {
    let all = secrets().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_owned();
    for secret in all.iter().filter(|s| s.len() >= REDACT_ANYWHERE) {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    for secret in all.iter().filter(|s| s.len() < REDACT_ANYWHERE) {
        if out.contains(secret.as_str()) {
            out = replace_whole_values(&out, secret);
        }
    }
    drop(all);
    redact_url_parts(&out)
}

/// A byte that may be part of a credential (a value ends where one of these stops).
fn value_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/%".contains(&b) || b >= 0x80
}

/// `text` with `secret` replaced where it is a whole value (see the module documentation).
fn replace_whole_values(text: &str, secret: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(secret) {
        if at < last {
            continue;
        }
        let end = at + secret.len();
        let before = &text[..at];
        let after = bytes.get(end).copied();
        let starts_whole = before.bytes().next_back().is_none_or(|b| !value_byte(b));
        let ends_whole = after.is_none_or(|b| !value_byte(b));
        let trimmed = before.trim_end_matches(' ');
        let lower = trimmed.to_ascii_lowercase();
        let in_value_position = trimmed.ends_with(['=', ':', '"', '\''])
            || ["bearer", "basic", "token"]
                .iter()
                .any(|scheme| lower.ends_with(scheme) && trimmed.len() < before.len());
        if starts_whole && ends_whole && in_value_position {
            out.push_str(&text[last..at]);
            out.push_str("***");
            last = end;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// `text` with each credential query parameter's value and each URL userinfo password
/// replaced by `***`.
fn redact_url_parts(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // `?name=value` or `&name=value`
            b'?' | b'&' => {
                let name_start = i + 1;
                let mut j = name_start;
                while j < bytes.len() && value_byte(bytes[j]) {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b'=' && j > name_start {
                    let name = &text[name_start..j];
                    let value_start = j + 1;
                    let mut k = value_start;
                    while k < bytes.len() && value_byte(bytes[k]) {
                        k += 1;
                    }
                    let value = &text[value_start..k];
                    if k > value_start && value != "***" && is_secret_param(&decode(name)) {
                        out.push_str(&text[last..value_start]);
                        out.push_str("***");
                        last = k;
                    }
                    i = k;
                    continue;
                }
                i += 1;
            }
            // `scheme://user:password@host`
            b':' if text[i..].starts_with("://") => {
                let start = i + 3;
                let mut j = start;
                while j < bytes.len() && !b"/?# \t\r\n\"'<>\\".contains(&bytes[j]) {
                    j += 1;
                }
                let authority = &text[start..j];
                if let Some(at) = authority.rfind('@') {
                    if let Some(colon) = authority[..at].find(':') {
                        let password = &authority[colon + 1..at];
                        if !password.is_empty() && password != "***" {
                            out.push_str(&text[last..start + colon + 1]);
                            out.push_str("***");
                            last = start + at;
                        }
                    }
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[last..]);
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
        Some(from_command(cmd, args.token_command_timeout)?)
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
/// shown; its error output's first line is, when it fails. A command still running after
/// `timeout` is killed (with what it started) and is one clear error.
fn from_command(cmd: &str, timeout: Duration) -> Result<String, Fatal> {
    let mut command = Command::new("sh");
    command
        .args(["-c", cmd])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        // Its own process group, so a timeout stops what it started too.
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .map_err(|e| Fatal::usage(format!("--token-command: cannot run sh: {e}")))?;
    let deadline = Instant::now() + timeout;
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(&mut child);
                return Err(Fatal::usage(format!(
                    "--token-command did not finish within {} and was stopped \
                     (--token-command-timeout sets the limit)",
                    humantime::format_duration(timeout)
                )));
            }
            // A child process gives no future to await here; a short poll is cheap for a
            // command run once before the load.
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(Fatal::usage(format!("--token-command: {e}"))),
        }
    };
    // What it started may still hold the pipes open: wait for them until the deadline only.
    let wait = |rx: mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    };
    let (out, err) = (wait(stdout), wait(stderr));
    if !status.success() {
        let stderr = String::from_utf8_lossy(&err);
        let first = stderr.lines().next().unwrap_or("").trim();
        return Err(Fatal::usage(format!(
            "--token-command failed ({status}){}{}",
            if first.is_empty() { "" } else { ": " },
            first
        )));
    }
    let stdout = String::from_utf8_lossy(&out);
    let first = stdout.lines().next().unwrap_or("").trim();
    if first.is_empty() {
        return Err(Fatal::usage("--token-command printed no token"));
    }
    Ok(first.to_owned())
}

/// Reads `pipe` to its end on a thread of its own; the bytes arrive on the channel.
fn read_in_background(
    pipe: Option<impl std::io::Read + Send + 'static>,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(bytes);
        });
    }
    rx
}

/// Stops `child` and its process group.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
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
        let t = Duration::from_secs(10);
        assert_eq!(from_command("printf 'tok-1\\nmore'", t).unwrap(), "tok-1");
        let e = from_command("echo nope >&2; exit 3", t)
            .unwrap_err()
            .error
            .to_string();
        assert!(
            e.contains("--token-command failed") && e.contains("nope"),
            "{e}"
        );
        assert!(from_command("true", t).is_err());
    }

    #[test]
    fn a_command_that_hangs_is_stopped_at_its_timeout() {
        let started = Instant::now();
        let e = from_command("echo early; sleep 30", Duration::from_millis(300))
            .unwrap_err()
            .error
            .to_string();
        assert!(e.contains("did not finish within 300ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn redaction_covers_the_raw_and_encoded_forms() {
        register("s3cr3t/+=x");
        let text = "ws://h/ws?token=s3cr3t%2F%2B%3Dx and s3cr3t/+=x";
        assert_eq!(redact(text), "ws://h/ws?token=*** and ***");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn json_escaped_forms_are_redacted() {
        register(r#"pa"ss\word-9"#);
        let json = serde_json::to_string(&serde_json::json!({"m": r#"x pa"ss\word-9 y"#})).unwrap();
        assert_eq!(redact(&json), r#"{"m":"x *** y"}"#);
        // Quoted twice: a JSON error body inside a JSON string.
        let twice = serde_json::to_string(&json).unwrap();
        assert!(!redact(&twice).contains("word-9"), "{}", redact(&twice));
    }

    #[test]
    fn credential_headers_register_their_values() {
        register_headers(&[
            ("Authorization".into(), "Bearer hdr-secret-1".into()),
            ("Cookie".into(), "sid=ck-val-2; theme=dark".into()),
            ("X-Team".into(), "search-team".into()),
            ("X-Upstream-Token".into(), "up-tok-3".into()),
        ]);
        let text = "auth hdr-secret-1 cookie ck-val-2 team search-team up up-tok-3";
        assert_eq!(redact(text), "auth *** cookie *** team search-team up ***");
        assert!(is_secret_header("api-key") && is_secret_header("Proxy-Authorization"));
        assert!(!is_secret_header("Content-Type"));
    }

    #[test]
    fn urls_lose_their_passwords_and_credential_parameters_whatever_their_length() {
        register_url("https://me:pw-long-9@h.example/v1?api_key=url-key-7&model=m");
        assert_eq!(
            redact("GET https://me:pw-long-9@h.example/v1?api_key=url-key-7&model=m failed"),
            "GET https://me:***@h.example/v1?api_key=***&model=m failed"
        );
        // Structural, registered or not: a server echoing a signed URL back.
        assert_eq!(
            redact(r#"{"u":"http://a:b@x/p?sig=q1&X-Amz-Signature=ff&n=1#f"}"#),
            r#"{"u":"http://a:***@x/p?sig=***&X-Amz-Signature=***&n=1#f"}"#
        );
        assert_eq!(redact("a?monkey=1&b=2"), "a?monkey=1&b=2");
    }

    #[test]
    fn short_secrets_are_redacted_only_as_whole_values() {
        register("k9");
        assert_eq!(
            redact("token: k9, \"k9\" Bearer k9 x=k9"),
            "token: ***, \"***\" Bearer *** x=***"
        );
        // Inside words, numbers and base64 they stay: they say nothing there.
        assert_eq!(redact("ak9b k9x 1k9 k9"), "ak9b k9x 1k9 k9");
    }
}
