//! Helpers shared by the CLI's integration tests: the binary, a fresh temporary directory, a
//! run of the binary.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The `loadkit` binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_loadkit");

/// A directory of its own for `name` (removed first), under the system's temporary directory.
pub(crate) fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadkit-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs `loadkit ARGS` with no stdin and returns what it did.
pub(crate) fn loadkit(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
