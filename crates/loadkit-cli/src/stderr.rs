//! Lines for stderr written by a thread of their own, so the engine's collector (where
//! observers run) never blocks on a slow or stalled terminal: it hands each line over through a
//! bounded channel and learns at once when the channel is full.

use std::io::Write as _;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the end of the program waits for the last lines to be written: a stalled stderr
/// (a full pipe nobody reads) leaves the thread behind instead of hanging the exit.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// A writer thread and the channel to it.
pub(crate) struct StderrLines {
    lines: Option<SyncSender<String>>,
    writer: Option<JoinHandle<()>>,
}

impl StderrLines {
    /// At most `backlog` lines wait for the writer. `overwrite`: each line replaces the last
    /// one on a terminal (`\r`, clear line) instead of following it.
    pub(crate) fn new(name: &str, backlog: usize, overwrite: bool) -> Self {
        let (lines, rx) = mpsc::sync_channel::<String>(backlog);
        let writer = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                for line in rx {
                    let mut err = std::io::stderr().lock();
                    let _ = if overwrite {
                        write!(err, "\r\x1b[2K{line}")
                    } else {
                        writeln!(err, "{line}")
                    };
                    let _ = err.flush();
                }
            })
            .ok();
        Self {
            lines: writer.is_some().then_some(lines),
            writer,
        }
    }

    /// Hands `line` to the writer; `false` when it was dropped because the writer is behind
    /// (or gone).
    pub(crate) fn send(&mut self, line: String) -> bool {
        let Some(lines) = &self.lines else {
            return false;
        };
        match lines.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                self.lines = None;
                false
            }
        }
    }
}

impl StderrLines {
    /// Closes the channel and lets the lines already handed over out, waiting at most
    /// [`FLUSH_WAIT`]. Later sends are dropped. Idempotent (drop calls it too).
    pub(crate) fn finish(&mut self) {
        self.lines = None;
        if let Some(writer) = self.writer.take() {
            join_within(writer);
        }
    }
}

/// Waits for a terminal-writing thread to end, at most [`FLUSH_WAIT`]: a thread stuck on a
/// stalled stderr is left behind rather than hanging the exit (std has no timed join, so it
/// polls).
pub(crate) fn join_within(thread: JoinHandle<()>) {
    let give_up = std::time::Instant::now() + FLUSH_WAIT;
    while !thread.is_finished() && std::time::Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(5));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}

impl Drop for StderrLines {
    fn drop(&mut self) {
        self.finish();
    }
}
