//! The client process's own resource use (CPU seconds, peak RSS), read from /proc on Linux.

/// Clock ticks per second of /proc/self/stat times: 100 on every Linux this runs on
/// (USER_HZ is fixed at 100 for the ABI).
const USER_HZ: f64 = 100.0;

/// User + system CPU seconds used by this process so far (all threads).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// Peak resident set size in bytes (VmHWM).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// File descriptors kept for everything but the connections (the runtime, files, stdio).
const FD_MARGIN: u64 = 64;

/// Raises the soft open-file limit to the hard one (where the system allows), so that
/// `concurrency` connections fit; one clear line when they cannot.
pub(crate) fn raise_open_files(concurrency: u64) -> Result<(), String> {
    #[cfg(unix)]
    {
        let need = concurrency.saturating_add(FD_MARGIN);
        let limit = match rlimit::increase_nofile_limit(
            need.max(rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(_, hard)| hard)),
        ) {
            Ok(limit) => limit,
            Err(_) => return Ok(()),
        };
        if limit < need {
            return Err(format!(
                "{concurrency} concurrent requests need about {need} open files, but this process may open only {limit} (ulimit -n; the hard limit caps it): lower the concurrency or raise the limit"
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = concurrency;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn linux_reports_cpu_and_memory() {
        if cfg!(target_os = "linux") {
            assert!(super::cpu_seconds().is_some());
            assert!(super::peak_rss_bytes().unwrap() > 1024 * 1024);
        }
    }
}
