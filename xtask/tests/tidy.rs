//! Tidy checks over the whole workspace, as ordinary tests: the architecture's dependency
//! direction, no printing / exiting / environment / signals outside the CLI (seen through
//! imports, not by text), a `//!` line atop every Rust file, and no silenced tests.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The loadkit crates a crate's `[dependencies]` name (dev-dependencies are free), each with
/// whether it is optional.
fn loadkit_deps(manifest: &str) -> Vec<(String, bool)> {
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("loadkit-") {
            let name = line.split(['.', ' ', '=']).next().unwrap();
            deps.push((name.to_owned(), line.contains("optional = true")));
        }
    }
    deps
}

#[test]
fn crate_dependencies_point_the_agreed_way() {
    // DESIGN.md §3 / docs/ARCHITECTURE.md: who may depend on whom.
    let allowed: &[(&str, &[&str])] = &[
        ("loadkit-schedule", &[]),
        ("loadkit-metrics", &[]),
        ("loadkit-core", &["loadkit-schedule", "loadkit-metrics"]),
        ("loadkit-http", &["loadkit-core"]),
        ("loadkit-sse", &["loadkit-core", "loadkit-http"]),
        (
            "loadkit-openai",
            &["loadkit-core", "loadkit-http", "loadkit-sse"],
        ),
        (
            "loadkit-ollama",
            &["loadkit-core", "loadkit-http", "loadkit-sse"],
        ),
        (
            "loadkit-ws",
            &["loadkit-core", "loadkit-http", "loadkit-sse"],
        ),
        (
            "loadkit-tts-ws",
            &["loadkit-core", "loadkit-ws", "loadkit-http", "loadkit-sse"],
        ),
        (
            "loadkit-asr-multipart",
            &["loadkit-core", "loadkit-http", "loadkit-sse"],
        ),
        ("loadkit-report", &["loadkit-core", "loadkit-metrics"]),
        // The server's /metrics: no loadkit crate at all (the CLI joins it to the report).
        ("loadkit-scrape", &[]),
        ("loadkit-testbed", &[]),
    ];
    let crates = root().join("crates");
    for entry in std::fs::read_dir(&crates).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "loadkit-cli" {
            continue; // the CLI composes everything
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let ok = allowed
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not in the architecture map: add it to docs/ARCHITECTURE.md and this test"))
            .1;
        for (dep, optional) in loadkit_deps(&manifest) {
            // The testbed's servers share no client code; only its test-only `harness`
            // feature runs requests through the engine.
            let harness = name == "loadkit-testbed" && dep == "loadkit-core" && optional;
            // A protocol crate's optional `simulator` feature starts its testbed server for
            // the CLI's built-in target; the engine, metrics and report never do.
            let simulator = dep == "loadkit-testbed"
                && optional
                && ![
                    "loadkit-schedule",
                    "loadkit-metrics",
                    "loadkit-core",
                    "loadkit-report",
                ]
                .contains(&name.as_str());
            assert!(
                harness || simulator || ok.contains(&dep.as_str()),
                "{name} must not depend on {dep} (see docs/ARCHITECTURE.md)"
            );
        }
    }
}

/// `code` without its comments and the contents of its string and char literals, so that what
/// is left is what the compiler sees as paths and macro names.
fn strip_comments_and_strings(code: &str) -> String {
    let b = code.as_bytes();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_byte(b, i) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            out.push_str("\"\"");
            i = j + close.len();
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == b'\'' && b.get(i + 2) == Some(&b'\'') {
            out.push_str("' '");
            i += 3;
        } else if c == b'\'' && b.get(i + 1) == Some(&b'\\') {
            // An escaped char literal such as '\n' or '\u{1F600}'.
            let mut j = i + 2;
            while j < b.len() && b[j] != b'\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            out.push(c as char);
            i += 1;
        }
    }
    out
}

/// `true` when the byte before `i` continues an identifier.
fn ident_byte(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Every identifier of `code` (already stripped), with the two characters that follow it.
fn idents(code: &str) -> Vec<(&str, &str)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if (b[i].is_ascii_alphabetic() || b[i] == b'_') && !ident_byte(b, i) {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let after = &code[i..(i + 2).min(code.len())];
            out.push((&code[start..i], after));
        } else {
            i += 1;
        }
    }
    out
}

/// What library code must not do: print (any print macro, or `stdout` / `stderr` / `stdin`
/// however imported), exit, read the environment or handle signals (the `std::env`,
/// `std::process` and `tokio::signal` modules however they are reached). Returns the first
/// offence found.
fn terminal_use(code: &str) -> Option<String> {
    let code = strip_comments_and_strings(code);
    for (ident, after) in idents(&code) {
        let is_macro = after.starts_with('!') && !after.starts_with("!=");
        match ident {
            "print" | "println" | "eprint" | "eprintln" | "dbg" if is_macro => {
                return Some(format!("{ident}!"));
            }
            "stdout" | "stderr" | "stdin" | "Stdout" | "Stderr" | "Stdin" => {
                return Some(ident.to_owned());
            }
            "env" | "process" | "signal" if !is_macro => return Some(ident.to_owned()),
            _ => {}
        }
    }
    None
}

#[test]
fn the_terminal_check_sees_every_way_in() {
    for offence in [
        "fn f() { print!(\"x\"); }",
        "fn f() { std::println!(\"x\"); }",
        "fn f() { dbg!(1); }",
        "use std::io::stderr;\nfn f() { let _ = stderr(); }",
        "use std::io::{self, Write};\nfn f() { let _ = io::stdout().flush(); }",
        "use std::env;\nfn f() { let _ = env::var(\"X\"); }",
        "use std::env::var;\nfn f() { let _ = var(\"X\"); }",
        "use std::{env, io};",
        "fn f() { std::process::exit(1) }",
        "use std::process::exit;",
        "async fn f() { tokio::signal::ctrl_c().await.unwrap() }",
    ] {
        assert!(terminal_use(offence).is_some(), "not seen: {offence}");
    }
    for fine in [
        "const V: &str = env!(\"CARGO_PKG_VERSION\");",
        "fn f() -> &'static str { \"println!(x) and std::env::var in a string\" }",
        "// println!(\"in a comment\")\nfn f() {}",
        "fn f() -> &'static str { r#\"eprintln!(\"raw\")\"# }",
        "fn f(a: u8) -> bool { a != 0 && 'x' != '\\n' }",
        "enum Reason { Signal }\nfn f(r: Reason) -> &'static str { match r { Reason::Signal => \"signal\" } }",
        "fn reprint() {}",
    ] {
        assert_eq!(terminal_use(fine), None, "wrongly flagged: {fine}");
    }
}

#[test]
fn only_the_cli_touches_the_terminal_env_signals_and_exit() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    for file in files {
        let rel = file
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("crates/loadkit-cli/")
            || rel.contains("/tests/")
            || rel.contains("/examples/")
            || rel.contains("/benches/")
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests at the bottom of a file may print; only library code is checked.
        let code = text.split("#[cfg(test)]").next().unwrap();
        if let Some(offence) = terminal_use(code) {
            panic!("{rel} uses {offence}: libraries never print, exit, read env or handle signals");
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_doc_line_and_no_test_is_silenced() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    assert!(files.len() > 10);
    let ignore = ["#[", "ignore]"].concat();
    let should_panic = ["#[", "should_panic"].concat();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must start with a //! line",
            file.display()
        );
        assert!(
            !text.contains(&ignore),
            "{} silences a test",
            file.display()
        );
        assert!(
            !text.contains(&should_panic),
            "{} uses should_panic",
            file.display()
        );
    }
}
