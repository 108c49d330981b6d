//! Helpers shared by the CLI's integration tests: the binary, a fresh temporary directory, a
//! run of the binary, a simulator in its own process.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

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

/// `loadkit serve-sim ARGS` in its own process; killed on drop.
pub(crate) struct Sim {
    child: Child,
    pub(crate) url: String,
}

impl Sim {
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve-sim")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("serve-sim said {line:?}"))
            .to_owned();
        Sim { child, url }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
