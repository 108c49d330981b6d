//! Tidy checks over the whole workspace, as ordinary tests: the architecture's dependency
//! direction, a `//!` line atop every Rust file, and no silenced tests.

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

/// The loadkit crates a crate's `[dependencies]` name (dev-dependencies are free).
fn loadkit_deps(manifest: &str) -> Vec<String> {
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
            deps.push(name.to_owned());
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
        ("loadkit-sse", &["loadkit-core"]),
        ("loadkit-openai", &["loadkit-core", "loadkit-sse"]),
        ("loadkit-ollama", &["loadkit-core", "loadkit-sse"]),
        ("loadkit-ws", &["loadkit-core"]),
        ("loadkit-tts-ws", &["loadkit-core", "loadkit-ws"]),
        ("loadkit-asr-multipart", &["loadkit-core", "loadkit-sse"]),
        ("loadkit-report", &["loadkit-core", "loadkit-metrics"]),
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
        for dep in loadkit_deps(&manifest) {
            assert!(
                ok.contains(&dep.as_str()),
                "{name} must not depend on {dep} (see docs/ARCHITECTURE.md)"
            );
        }
    }
}

#[test]
fn only_the_cli_touches_the_terminal_env_signals_and_exit() {
    let forbidden = [
        "println!",
        "eprintln!",
        "std::process::exit",
        "std::env::var",
        "tokio::signal",
    ];
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
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for needle in forbidden {
            assert!(
                !code.contains(needle),
                "{rel} uses {needle}: libraries never print, exit, read env or handle signals"
            );
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
