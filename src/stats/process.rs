//! What the process itself uses, read from `/proc` (Linux): CPU time, memory, open
//! descriptors and their limit. Each reading is `None` where `/proc` cannot say.

/// Clock ticks per second of `/proc/<pid>/stat`'s times: `USER_HZ`, which Linux fixes at 100
/// for every user-space interface whatever the kernel's own tick rate.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far, user and system, by every thread of the process.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SECOND)
}

/// The most resident memory the process has had, in KiB (`VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM:")
}

/// The process's resident memory now, in KiB (`VmRSS`).
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS:")
}

/// A figure in KiB of `/proc/self/status`, by its field name.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Descriptors open now.
pub fn open_files() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}

/// The soft open-file limit (`RLIMIT_NOFILE`); `None` where it cannot be read or is
/// "unlimited".
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_can_be_read() {
        let before = cpu_seconds().expect("cpu time");
        // Some work, so that the CPU time moves.
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let after = cpu_seconds().unwrap();
        assert!(after - before >= 0.1, "{before} → {after}");
        assert!(peak_rss_kib().is_some_and(|kib| kib > 0));
        assert!(open_files().is_some_and(|n| n >= 3));
        assert!(open_file_limit().is_some_and(|n| n > 0));
    }
}
