//! The pass/fail checks compare reports: ThitsaX's throughput against the
//! proxy and ilp-connector (thresholds that depend on its store), its p99,
//! and every packet fulfilled.
//!
//! A check whose target was not measured is NOT MEASURED, never a pass: a
//! missing figure must not read as a good one.

use crate::cli::ThitsaxStore;
use crate::compare::figures::{Target, TargetSummary};

/// The throughput targets ThitsaX is held to; they depend on its store.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Thresholds {
    /// ThitsaX must reach this fraction of the bare proxy's packets/s...
    min_ratio_vs_proxy: f64,
    /// ...and this multiple of ilp-connector's packets/s.
    min_ratio_vs_ilp_connector: f64,
}

impl Thresholds {
    pub(crate) fn of(store: ThitsaxStore) -> Thresholds {
        match store {
            ThitsaxStore::Memory => Thresholds { min_ratio_vs_proxy: 0.60, min_ratio_vs_ilp_connector: 6.0 },
            // The targets for the Redis store: every packet adds Redis round trips.
            ThitsaxStore::Redis => Thresholds { min_ratio_vs_proxy: 0.40, min_ratio_vs_ilp_connector: 4.0 },
        }
    }
}

/// ThitsaX must keep its p99 latency below this, whatever the store.
const MAX_P99_MS: f64 = 5.0;

/// `a / b`, or None when it means nothing (b zero, either not finite).
fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (a.is_finite() && b.is_finite() && b > 0.0 && r.is_finite()).then_some(r)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    Fail,
    /// A target of the check was not measured (e.g. no `--ilp-connector`).
    NotMeasured,
}

impl Verdict {
    fn of(value: Option<f64>, ok: impl Fn(f64) -> bool) -> Verdict {
        match value {
            None => Verdict::NotMeasured,
            Some(v) if ok(v) => Verdict::Pass,
            Some(_) => Verdict::Fail,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotMeasured => "NOT MEASURED",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Check {
    pub(crate) what: &'static str,
    pub(crate) value: Option<f64>,
    /// Decimals `value` is printed with.
    pub(crate) decimals: usize,
    pub(crate) limit: String,
    pub(crate) verdict: Verdict,
}

/// The comparison the project reports, from the per-target medians.
pub(crate) fn checks(summaries: &[TargetSummary], limits: Thresholds) -> Vec<Check> {
    let Thresholds { min_ratio_vs_proxy, min_ratio_vs_ilp_connector } = limits;
    let get = |t: Target| summaries.iter().find(|s| s.target == t);
    let pps = |t: Target| get(t).map(|s| s.packets_per_s);
    let thitsax_over = |t: Target| pps(Target::Thitsax).zip(pps(t)).and_then(|(a, b)| ratio(a, b));
    let vs_proxy = thitsax_over(Target::Proxy);
    let vs_connector = thitsax_over(Target::IlpConnector);
    let p99 = get(Target::Thitsax).map(|s| s.p99_ms).filter(|v| v.is_finite());
    // Throughput counts Rejects and leaves errors out, so a target that fails
    // packets fast could look good: the comparison only holds if all were fulfilled.
    let not_fulfilled =
        (!summaries.is_empty()).then(|| summaries.iter().map(|s| s.not_fulfilled).sum::<u64>());
    vec![
        Check {
            what: "ThitsaX/proxy packets/s",
            value: vs_proxy,
            decimals: 2,
            limit: format!(">= {min_ratio_vs_proxy:.2}"),
            verdict: Verdict::of(vs_proxy, |r| r >= min_ratio_vs_proxy),
        },
        Check {
            what: "ThitsaX/ilp-connector packets/s",
            value: vs_connector,
            decimals: 1,
            limit: format!(">= {min_ratio_vs_ilp_connector:.1}"),
            verdict: Verdict::of(vs_connector, |r| r >= min_ratio_vs_ilp_connector),
        },
        Check {
            what: "ThitsaX p99 ms",
            value: p99,
            decimals: 3,
            limit: format!("< {MAX_P99_MS:.1}"),
            verdict: Verdict::of(p99, |v| v < MAX_P99_MS),
        },
        Check {
            what: "packets not fulfilled (all runs)",
            value: not_fulfilled.map(|n| n as f64),
            decimals: 0,
            limit: "= 0".to_string(),
            verdict: Verdict::of(not_fulfilled.map(|n| n as f64), |n| n == 0.0),
        },
    ]
}

/// FAIL if any check failed, else NOT MEASURED if any could not be made, else PASS.
pub(crate) fn overall(checks: &[Check]) -> Verdict {
    let any = |v: Verdict| checks.iter().any(|c| c.verdict == v);
    if any(Verdict::Fail) {
        Verdict::Fail
    } else if any(Verdict::NotMeasured) || checks.is_empty() {
        Verdict::NotMeasured
    } else {
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ThitsaxStore;
    use crate::compare::figures::{Target, TargetSummary};

    fn summary(target: Target, packets_per_s: f64, p99_ms: f64) -> TargetSummary {
        TargetSummary {
            target,
            rounds: 3,
            packets: 1000,
            packets_per_s,
            p50_ms: 1.0,
            p99_ms,
            max_ms: 9.0,
            cpu_us_per_packet: 10.0,
            not_fulfilled: 0,
            redis: None,
        }
    }

    fn mem_checks(s: &[TargetSummary]) -> Vec<Check> {
        checks(s, Thresholds::of(ThitsaxStore::Memory))
    }

    fn verdicts(s: &[TargetSummary]) -> Vec<Verdict> {
        mem_checks(s).iter().map(|c| c.verdict).collect()
    }

    #[test]
    fn checks_pass_at_the_limits_and_fail_past_them() {
        use Verdict::*;
        let proxy = summary(Target::Proxy, 10_000.0, 1.0);
        let jsc = summary(Target::IlpConnector, 1_000.0, 50.0);
        // Exactly 0.60 of the proxy and 6x ilp-connector pass; p99 must be strictly below 5 ms.
        let at_limits = [proxy.clone(), summary(Target::Thitsax, 6_000.0, 4.999), jsc.clone()];
        assert_eq!(verdicts(&at_limits), [Pass, Pass, Pass, Pass]);
        assert_eq!(overall(&mem_checks(&at_limits)), Pass);
        let cs = mem_checks(&at_limits);
        assert_eq!(cs[0].value, Some(0.6));
        assert_eq!(cs[1].value, Some(6.0));
        let slow = [proxy.clone(), summary(Target::Thitsax, 5_999.0, 5.0), jsc.clone()];
        assert_eq!(verdicts(&slow), [Fail, Fail, Fail, Pass]);
        assert_eq!(overall(&mem_checks(&slow)), Fail);
        let mut rejecting = summary(Target::Thitsax, 9_000.0, 1.0);
        rejecting.not_fulfilled = 1;
        assert_eq!(verdicts(&[proxy, rejecting, jsc])[3], Fail);
    }

    #[test]
    fn checks_without_a_target_are_not_measured() {
        use Verdict::*;
        let no_connector = [summary(Target::Proxy, 10_000.0, 1.0), summary(Target::Thitsax, 8_000.0, 2.0)];
        assert_eq!(verdicts(&no_connector), [Pass, NotMeasured, Pass, Pass]);
        assert_eq!(overall(&mem_checks(&no_connector)), NotMeasured);
        assert_eq!(mem_checks(&no_connector)[1].value, None);
        // A zero or NaN rate is no ratio at all, not an infinite one.
        let zero = [summary(Target::Proxy, 0.0, 1.0), summary(Target::Thitsax, 8_000.0, f64::NAN)];
        assert_eq!(verdicts(&zero)[..3], [NotMeasured, NotMeasured, NotMeasured]);
        assert_eq!(verdicts(&[]), [NotMeasured; 4]);
        assert_eq!(overall(&[]), NotMeasured);
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
    }

    #[test]
    fn thresholds_depend_on_the_store() {
        use Verdict::*;
        assert_eq!(
            Thresholds::of(ThitsaxStore::Memory),
            Thresholds { min_ratio_vs_proxy: 0.60, min_ratio_vs_ilp_connector: 6.0 }
        );
        assert_eq!(
            Thresholds::of(ThitsaxStore::Redis),
            Thresholds { min_ratio_vs_proxy: 0.40, min_ratio_vs_ilp_connector: 4.0 }
        );
        let redis = Thresholds::of(ThitsaxStore::Redis);
        let proxy = summary(Target::Proxy, 10_000.0, 1.0);
        let jsc = summary(Target::IlpConnector, 1_000.0, 50.0);
        // Exactly 0.40 of the proxy and 4x ilp-connector pass with Redis, fail in memory.
        let at_limits = [proxy.clone(), summary(Target::Thitsax, 4_000.0, 4.999), jsc.clone()];
        let v = |s: &[TargetSummary], t| checks(s, t).iter().map(|c| c.verdict).collect::<Vec<_>>();
        assert_eq!(v(&at_limits, redis), [Pass, Pass, Pass, Pass]);
        assert_eq!(v(&at_limits, Thresholds::of(ThitsaxStore::Memory)), [Fail, Fail, Pass, Pass]);
        let cs = checks(&at_limits, redis);
        assert_eq!(
            (cs[0].limit.as_str(), cs[1].limit.as_str(), cs[2].limit.as_str()),
            (">= 0.40", ">= 4.0", "< 5.0")
        );
        // Just below, and p99 stays a check at 5 ms with Redis too.
        let slow = [proxy, summary(Target::Thitsax, 3_999.0, 5.0), jsc];
        assert_eq!(v(&slow, redis), [Fail, Fail, Fail, Pass]);
    }
}
