//! The figures of one `send` run: the percentile rule, the `Summary` and its
//! JSON line, and the stderr line that marks the start of the measured phase.
//!
//! A module of its own because two sides read the same contract: `send` writes
//! the JSON line and the marker, `compare` reads them from its `send` children.

use std::collections::BTreeMap;

/// Nearest-rank percentile of a sorted slice (p in 0..=100).
pub(crate) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn json_map(m: &BTreeMap<String, u64>) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{}:{}", json_str(k), v)).collect();
    format!("{{{}}}", items.join(","))
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Printed by `send` on stderr right before its measured phase; `compare`
/// starts the target's CPU clock when it reads it.
pub(crate) const MEASURE_START: &str = "send: measuring";

/// The figures of one measured run; `to_json` is the machine-readable line.
pub(crate) struct Summary {
    pub(crate) label: String,
    pub(crate) url: String,
    pub(crate) packets: u64,
    pub(crate) concurrency: usize,
    pub(crate) seconds: f64,
    pub(crate) packets_per_s: f64,
    pub(crate) fulfilled_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_ms: f64,
    pub(crate) fulfilled: u64,
    pub(crate) rejected: u64,
    pub(crate) errors: u64,
    pub(crate) reject_codes: BTreeMap<String, u64>,
    pub(crate) error_kinds: BTreeMap<String, u64>,
    pub(crate) sender_cpu_s: f64,
    pub(crate) sender_threads: usize,
    pub(crate) aborted: bool,
}

impl Summary {
    pub(crate) fn to_json(&self) -> String {
        let f = |x: f64| if x.is_finite() { format!("{x:.4}") } else { "null".to_string() };
        format!(
            concat!(
                "{{\"label\":{},\"url\":{},\"packets\":{},\"concurrency\":{},\"seconds\":{},",
                "\"packets_per_s\":{},\"fulfilled_per_s\":{},\"p50_ms\":{},\"p90_ms\":{},\"p99_ms\":{},",
                "\"p999_ms\":{},\"max_ms\":{},\"mean_ms\":{},\"fulfilled\":{},\"rejected\":{},\"errors\":{},",
                "\"reject_codes\":{},\"error_kinds\":{},\"sender_cpu_s\":{},\"sender_threads\":{},\"aborted\":{}}}"
            ),
            json_str(&self.label),
            json_str(&self.url),
            self.packets,
            self.concurrency,
            f(self.seconds),
            f(self.packets_per_s),
            f(self.fulfilled_per_s),
            f(self.p50_ms),
            f(self.p90_ms),
            f(self.p99_ms),
            f(self.p999_ms),
            f(self.max_ms),
            f(self.mean_ms),
            self.fulfilled,
            self.rejected,
            self.errors,
            json_map(&self.reject_codes),
            json_map(&self.error_kinds),
            f(self.sender_cpu_s),
            self.sender_threads,
            self.aborted,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 99.9), 100);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[42], 50.0), 42);
        assert_eq!(percentile(&[], 99.0), 0);
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99.0), 990);
    }

    #[test]
    fn json_escaping() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
        let mut m = BTreeMap::new();
        m.insert("F02".to_string(), 3);
        m.insert("T04".to_string(), 1);
        assert_eq!(json_map(&m), "{\"F02\":3,\"T04\":1}");
    }
}
