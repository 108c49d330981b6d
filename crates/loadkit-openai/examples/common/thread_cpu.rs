//! CPU time of the calling thread, shared by the examples that measure cost per CPU-second.

use std::time::Duration;

/// CPU time this thread has used (user + system), from `/proc/thread-self/stat` (Linux), in
/// clock ticks of 10 ms: measure for a second or more.
pub(crate) fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}
