//! What the sender knows of the exchange rate: exact fractions, never floats.
//!
//! Every connector on the path rounds its converted amount down, so one packet that sent `s` and
//! delivered `d` says only that the rate `r` lies in `[d / s, (d + 1) / s)`. [`RateBounds`] keeps
//! the intersection of those intervals over all the authentic replies (as @interledger/pay's
//! exchange-rate controller does): a lower bound that is inclusive and an upper bound that is
//! exclusive, which close in on the real rate as packets of several sizes come back.
//!
//! Numbers: amounts are `u64`; a bound's numerator is at most `2^64` (a delivered amount plus one)
//! and its denominator a source amount, at most `u64::MAX`, so every product of a bound and an
//! amount fits a `u128` exactly. The one product with three factors (the slippage floor) is done
//! in [`BigUint`].

use num_bigint::BigUint;
use std::cmp::Ordering;
use std::fmt;

/// A non-negative exact fraction. Invariant: `den >= 1`, `num <= 2^64`, `den < 2^64`: what a
/// packet's amounts can make, and what keeps every cross product inside a `u128`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    num: u128,
    den: u128,
}

/// `2^64`: a rate's numerator can reach it (`u64::MAX` delivered, plus one).
const NUM_MAX: u128 = 1 << 64;

impl Ratio {
    /// `delivered / sent` in lowest terms, for `sent >= 1`.
    fn of(delivered: u128, sent: u64) -> Ratio {
        debug_assert!(sent >= 1 && delivered <= NUM_MAX);
        let divisor = gcd(delivered, u128::from(sent));
        Ratio { num: delivered / divisor, den: u128::from(sent) / divisor }
    }

    pub fn numerator(&self) -> u128 {
        self.num
    }

    pub fn denominator(&self) -> u128 {
        self.den
    }

    /// `floor(amount × self)`, exact (it may pass `u64::MAX`).
    pub fn floor_of(&self, amount: u64) -> u128 {
        let product = u128::from(amount) * self.num; // < 2^128: amount < 2^64, num <= 2^64
        product / self.den
    }

    /// `ceil(amount × self)`, exact.
    fn ceil_of(&self, amount: u64) -> u128 {
        let product = u128::from(amount) * self.num;
        product.div_ceil(self.den)
    }
}

/// Euclid's; `gcd(0, n) = n`.
fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// An amount as a `u64`, at most `u64::MAX` (no packet carries more).
fn capped(amount: u128) -> u64 {
    u64::try_from(amount).unwrap_or(u64::MAX)
}

impl Ord for Ratio {
    fn cmp(&self, other: &Self) -> Ordering {
        // Each product is at most 2^64 × (2^64 − 1) < 2^128.
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ratio({self})")
    }
}

/// The rate (delivered per source unit) as far as the replies tell it: `lower <= r < upper`.
#[derive(Debug, Clone, Copy)]
pub struct RateBounds {
    lower: Ratio,
    upper: Ratio,
    /// Whether any authentic reply to a packet of at least one unit has been seen.
    known: bool,
}

impl Default for RateBounds {
    /// Nothing known: `0 <= r < 2^64` (one unit never delivers more than `u64::MAX`).
    fn default() -> Self {
        RateBounds { lower: Ratio { num: 0, den: 1 }, upper: Ratio { num: NUM_MAX, den: 1 }, known: false }
    }
}

impl RateBounds {
    /// Narrows the bounds with a packet that sent `sent` and delivered `delivered` (the amount
    /// that arrived, from an authentic reply). A packet outside the bounds means the rate moved:
    /// the bounds restart from that packet alone, so they describe the rate now.
    pub fn observe(&mut self, sent: u64, delivered: u64) {
        if sent == 0 {
            return;
        }
        let lower = Ratio::of(u128::from(delivered), sent);
        let upper = Ratio::of(u128::from(delivered) + 1, sent);
        if !self.known || upper <= self.lower || lower >= self.upper {
            (self.lower, self.upper) = (lower, upper);
        } else {
            self.lower = self.lower.max(lower);
            self.upper = self.upper.min(upper);
        }
        self.known = true;
    }

    pub fn is_known(&self) -> bool {
        self.known
    }

    pub fn lower(&self) -> Ratio {
        self.lower
    }

    pub fn upper(&self) -> Ratio {
        self.upper
    }

    /// The least `source` delivers while the rate holds: `floor(source × lower)`.
    pub fn least_delivered(&self, source: u64) -> u64 {
        capped(self.lower.floor_of(source))
    }

    /// The most `source` can deliver while the rate holds: `ceil(source × upper) − 1` (the upper
    /// bound is exclusive).
    pub fn most_delivered(&self, source: u64) -> u64 {
        capped(self.upper.ceil_of(source).saturating_sub(1))
    }

    /// The largest source amount that cannot deliver more than `delivered` while the rate holds:
    /// the largest `s` with `ceil(s × upper) − 1 <= delivered`, that is `floor((delivered + 1) /
    /// upper)`.
    pub fn source_for_at_most(&self, delivered: u64) -> u64 {
        // upper > 0 always (an upper bound is (d + 1) / s), so this divides by a positive number;
        // (delivered + 1) <= 2^64 and den < 2^64, so the product fits.
        let numerator = (u128::from(delivered) + 1) * self.upper.den;
        u64::try_from(numerator / self.upper.num).unwrap_or(u64::MAX)
    }
}

/// `floor(source × rate × (1 − slippage))`, exactly: the least a packet of `source` may deliver
/// for the receiver to accept it. `slippage` is `numerator / denominator` in `[0, 1]`.
pub fn floor_after_slippage(source: u64, rate: &Ratio, slippage: (u64, u64)) -> u64 {
    let (numerator, denominator) = slippage;
    debug_assert!(denominator >= 1 && numerator <= denominator);
    let kept = BigUint::from(denominator - numerator);
    let top = BigUint::from(source) * BigUint::from(rate.num) * kept;
    let bottom = BigUint::from(rate.den) * BigUint::from(denominator);
    u64::try_from(top / bottom).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(observations: &[(u64, u64)]) -> RateBounds {
        let mut b = RateBounds::default();
        for &(s, d) in observations {
            b.observe(s, d);
        }
        b
    }

    #[test]
    fn one_packet_brackets_the_rate_with_the_floor_it_went_through() {
        // 1 USD at scale 9 became 1818 MXN cents: 1818 / 10^9 <= r < 1819 / 10^9.
        let b = bounds(&[(1_000_000_000, 1818)]);
        assert_eq!(b.lower().to_string(), "909/500000000", "in lowest terms");
        assert_eq!(b.upper().to_string(), "1819/1000000000");
        assert_eq!(b.least_delivered(500_000_000), 909);
        assert_eq!(b.most_delivered(500_000_000), 909, "ceil(909.5) - 1");
        assert_eq!(b.most_delivered(1_000_000_000), 1818, "the upper bound is exclusive");
    }

    #[test]
    fn bounds_narrow_with_packets_of_other_sizes() {
        // r = 1818.18.../10^9 (18.1818 MXN per USD): 10^12 delivered 1_818_181, 10^9 delivered 1818.
        let b = bounds(&[(1_000_000_000, 1818), (1_000_000_000_000, 1_818_181)]);
        assert_eq!(b.lower().to_string(), "1818181/1000000000000");
        assert_eq!(b.upper().to_string(), "909091/500000000000");
        // A packet contradicting the bounds restarts them.
        let mut moved = b;
        moved.observe(1_000_000_000, 1000);
        assert_eq!(moved.lower().to_string(), "1/1000000");
        assert_eq!(moved.upper().to_string(), "1001/1000000000");
    }

    #[test]
    fn the_source_for_at_most_never_exceeds_the_bound() {
        for observations in [
            vec![(1_000_000_000u64, 1818u64), (1_000_000_000_000, 1_818_181)],
            vec![(1, 550_055), (1000, 550_055_005)],
            vec![(3, 1)],
            vec![(u64::MAX, u64::MAX)],
            vec![(1, u64::MAX)],
        ] {
            let b = bounds(&observations);
            for delivered in [0u64, 1, 2, 17, 909, 1818, 550_054, 550_055, 1 << 40, u64::MAX - 1, u64::MAX] {
                let s = b.source_for_at_most(delivered);
                assert!(b.most_delivered(s) <= delivered, "{observations:?} {delivered}: {s}");
                // (No amount delivers past u64::MAX, so "largest" means nothing there.)
                if s < u64::MAX && delivered < u64::MAX {
                    assert!(
                        b.most_delivered(s + 1) > delivered,
                        "{observations:?} {delivered}: {s} is the largest"
                    );
                }
            }
        }
    }

    #[test]
    fn edge_amounts_stay_exact() {
        let b = bounds(&[(u64::MAX, u64::MAX)]);
        assert_eq!(b.least_delivered(u64::MAX), u64::MAX);
        assert_eq!(b.most_delivered(u64::MAX), u64::MAX);
        assert_eq!(b.least_delivered(0), 0);
        let huge = bounds(&[(1, u64::MAX)]);
        assert_eq!(huge.upper().numerator(), 1 << 64);
        assert_eq!(huge.most_delivered(2), u64::MAX, "capped, not wrapped");
        assert_eq!(huge.source_for_at_most(u64::MAX), 1);
        let nothing = RateBounds::default();
        assert!(!nothing.is_known());
        assert_eq!(nothing.source_for_at_most(0), 0);
    }

    #[test]
    fn the_slippage_floor_is_exact_past_u128() {
        let rate = Ratio::of(u128::from(u64::MAX), u64::MAX);
        assert_eq!(floor_after_slippage(u64::MAX, &rate, (0, 1)), u64::MAX);
        assert_eq!(floor_after_slippage(u64::MAX, &rate, (1, u64::MAX)), u64::MAX - 1);
        assert_eq!(floor_after_slippage(u64::MAX, &rate, (1, 1)), 0);
        let usd_mxn = Ratio::of(1_818_181, 1_000_000_000_000);
        // 1 USD at 1% slippage: floor(1818.181 × 0.99) = floor(1799.99919) = 1799.
        assert_eq!(floor_after_slippage(1_000_000_000, &usd_mxn, (1, 100)), 1799);
        assert_eq!(floor_after_slippage(1_000_000_000, &usd_mxn, (0, 1)), 1818);
    }
}
