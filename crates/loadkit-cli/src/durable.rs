//! Crash-safe results: checkpoints of report.json during the run and raw per-request records,
//! each written on a thread of its own so the collector never waits for a disk.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use loadkit_core::{CheckpointSink, Control, Event, Observer, RunResult};
use loadkit_report::{Report, RunMeta};

/// Hands checkpoint snapshots to a writer thread that turns each into a redacted
/// `report.json`, atomically replaced. A snapshot arriving while the previous one is still
/// being written is skipped (the next one is at most one interval later).
#[derive(Debug)]
pub(crate) struct Checkpoints {
    tx: mpsc::SyncSender<RunResult>,
}

/// The writer thread of [`Checkpoints`] or [`RawRecords`]; join it before the final write.
#[derive(Debug)]
pub(crate) struct Writer(JoinHandle<Option<String>>);

impl Writer {
    /// Waits for the thread's last write; the first write error it met, if any.
    pub(crate) fn finish(self) -> Option<String> {
        self.0
            .join()
            .unwrap_or_else(|_| Some("the writer thread panicked".to_owned()))
    }
}

impl Checkpoints {
    /// Checkpoints into `dir`/report.json, each with `meta` (CPU and memory read at the time).
    pub(crate) fn start(dir: PathBuf, meta: RunMeta) -> std::io::Result<(Self, Writer)> {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = mpsc::sync_channel::<RunResult>(1);
        let thread = std::thread::Builder::new()
            .name("loadkit-checkpoint".into())
            .spawn(move || {
                let mut error = None;
                for snapshot in rx {
                    let mut meta = meta.clone();
                    meta.cpu_s = crate::process::cpu_seconds();
                    meta.peak_rss_bytes = crate::process::peak_rss_bytes();
                    let report = Report::from_run(&snapshot, meta);
                    let json = crate::secret::redact(&report.to_json());
                    if let Err(e) = crate::run::write_atomic(&dir, "report.json", &json) {
                        error.get_or_insert(format!("checkpoint: {e}"));
                    }
                }
                error
            })?;
        Ok((Self { tx }, Writer(thread)))
    }
}

impl CheckpointSink for Checkpoints {
    fn checkpoint(&mut self, snapshot: RunResult) {
        let _ = self.tx.try_send(snapshot);
    }
}

/// Flush the raw records at least this often (bytes buffered).
const RAW_BATCH: usize = 256 * 1024;

/// An observer that formats one JSON line per finished request into a buffer and hands the
/// buffer to a writer thread every tick (one second) or every [`RAW_BATCH`] bytes; the thread
/// redacts, writes and flushes it. A `kill -9` loses at most the last second.
#[derive(Debug)]
pub(crate) struct RawRecords {
    buf: Vec<u8>,
    tx: mpsc::Sender<Vec<u8>>,
}

impl RawRecords {
    /// Records into `path` (created, or truncated).
    pub(crate) fn start(path: &Path) -> std::io::Result<(Self, Writer)> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(path)?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let thread = std::thread::Builder::new()
            .name("loadkit-raw".into())
            .spawn(move || {
                let mut error = None;
                for batch in rx {
                    let text = crate::secret::redact(&String::from_utf8_lossy(&batch));
                    if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
                        error.get_or_insert(format!("raw records: {e}"));
                    }
                }
                if let Err(e) = file.sync_all() {
                    error.get_or_insert(format!("raw records: {e}"));
                }
                error
            })?;
        Ok((
            Self {
                buf: Vec::with_capacity(RAW_BATCH),
                tx,
            },
            Writer(thread),
        ))
    }

    fn hand_over(&mut self) {
        if !self.buf.is_empty() {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(RAW_BATCH));
            let _ = self.tx.send(full);
        }
    }
}

impl Observer for RawRecords {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        match event {
            Event::RequestFinished(record) => {
                loadkit_report::raw_line(record, &mut self.buf);
                if self.buf.len() >= RAW_BATCH {
                    self.hand_over();
                }
            }
            Event::Tick(_) => self.hand_over(),
            _ => {}
        }
        Control::Continue
    }
}

impl Drop for RawRecords {
    fn drop(&mut self) {
        self.hand_over();
    }
}
