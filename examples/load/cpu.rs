//! CPU time read from /proc: of a process (`/proc/PID/stat`, for the figures
//! every subcommand prints) and of the whole machine (`/proc/stat`, for
//! compare's wait until the CPUs are quiet).
//!
//! Linux only, like the rest of the tool; a value that cannot be read is NaN,
//! so that one missing sample does not stop a comparison.

/// CPU seconds (user + system) used by this process so far.
pub(crate) fn cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

/// CPU seconds (user + system, all threads) used so far by process `pid`
/// ("self" or a number); NaN when it cannot be read (e.g. it has exited).
pub(crate) fn process_cpu_seconds(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| stat_cpu_seconds(&s)).unwrap_or(f64::NAN)
}

/// utime + stime of a /proc/PID/stat line, in seconds.
fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields 14 and 15, counted after the ")" closing comm (which may itself
    // contain spaces and parentheses, hence the last ")").
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { return f64::NAN };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
}

/// Aggregate CPU time from the first line of /proc/stat: (idle incl. iowait, total), in ticks.
fn cpu_ticks(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().next()?.strip_prefix("cpu ")?;
    // user nice system idle iowait irq softirq steal; guest time is already in user.
    let f: Vec<u64> = line.split_whitespace().take(8).map(|v| v.parse().ok()).collect::<Option<_>>()?;
    if f.len() < 5 {
        return None;
    }
    Some((f[3] + f[4], f.iter().sum()))
}

/// Fraction of CPU time spent idle between two `cpu_ticks` samples.
pub(crate) fn idle_fraction(before: (u64, u64), after: (u64, u64)) -> f64 {
    let idle = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total == 0.0 {
        return f64::NAN;
    }
    idle / total
}

pub(crate) fn read_cpu_ticks() -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    cpu_ticks(&text).ok_or_else(|| "/proc/stat: unexpected format".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_parsing() {
        // comm may hold spaces and parentheses; utime and stime are fields 14 and 15.
        let stat = "1234 (we ird) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100";
        assert_eq!(stat_cpu_seconds(stat), 3.0);
        assert!(stat_cpu_seconds("garbage").is_nan());
        let a = cpu_ticks("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(a, (800, 1000));
        let b = cpu_ticks("cpu  150 0 150 1600 100 0 0 0 0 0\n").unwrap();
        assert_eq!(idle_fraction(a, b), 0.9);
        assert!(idle_fraction(a, a).is_nan());
        assert_eq!(cpu_ticks("intr 1 2 3"), None);
        assert!(process_cpu_seconds("self") >= 0.0);
    }
}
