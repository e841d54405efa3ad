//! What the machine itself did during a figure, from `/proc/stat` (Linux): figures taken on a
//! shared VM mean little without the share of time its hypervisor gave to others ("steal").

use std::future::Future;

/// Jiffies since boot, over all CPUs: (busy, steal, total).
fn cpu_times() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let (idle, steal) = (fields.get(3)? + fields.get(4)?, *fields.get(7)?);
    let total: u64 = fields.iter().take(8).sum();
    Some((total - idle - steal, steal, total))
}

/// Runs `figure`, then prints one line with how busy the machine was meanwhile and how much
/// of its time was stolen (each as a share of all CPUs' time).
pub async fn watched<F: Future<Output = ()>>(figure: F) {
    let before = cpu_times();
    figure.await;
    if let (Some((b0, s0, t0)), Some((b1, s1, t1))) = (before, cpu_times()) {
        let total = (t1 - t0).max(1) as f64;
        figure!(
            "  machine: {:.0}% busy, {:.0}% stolen by the hypervisor (all CPUs)",
            100.0 * (b1 - b0) as f64 / total,
            100.0 * (s1 - s0) as f64 / total
        );
    }
}
