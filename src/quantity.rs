//! Amounts as settlement engines speak them (RFC 0038 `Quantity`): a non-negative integer at a
//! scale, the integer written as a decimal string so that no platform rounds it. Conversion
//! between scales is exact: what a smaller scale cannot hold is returned as a remainder, never
//! dropped.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// `amount / 10^scale` standard units of the account's asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantity {
    pub amount: u128,
    pub scale: u8,
}

/// Why a Quantity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("body is not a JSON Quantity {{\"amount\": \"<digits>\", \"scale\": <0-255>}}: {0}")]
    Malformed(String),
    #[error("amount must be a string of decimal digits")]
    NotDigits,
    #[error("amount has more digits than this node handles (at most {max})", max = AMOUNT_DIGITS_MAX)]
    TooLarge,
}

/// u128 holds every 38-digit number.
const AMOUNT_DIGITS_MAX: usize = 38;

impl Quantity {
    pub fn new(amount: u128, scale: u8) -> Self {
        Quantity { amount, scale }
    }

    /// Parses a request body. Strict: the amount is digits only (no sign, no spaces, no
    /// exponent), unknown fields are refused.
    pub fn from_json(body: &[u8]) -> Result<Quantity, QuantityError> {
        let wire: Wire = serde_json::from_slice(body).map_err(|e| QuantityError::Malformed(e.to_string()))?;
        Ok(Quantity { amount: parse_amount(&wire.amount)?, scale: wire.scale })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Quantity always serializes")
    }

    /// This quantity at scale `to`: the whole units there, and the remainder (at this quantity's
    /// scale) that `to` cannot hold. `None` if the result does not fit in a u128.
    pub fn rescale(&self, to: u8) -> Option<(u128, u128)> {
        rescale(self.amount, self.scale, to)
    }
}

/// `amount` at scale `from`, expressed at scale `to`: `(whole, remainder)` with
/// `whole * 10^(from-to) + remainder == amount` when `to < from`, and `remainder == 0` otherwise.
/// `None` when the result overflows u128.
pub fn rescale(amount: u128, from: u8, to: u8) -> Option<(u128, u128)> {
    if to >= from {
        let factor = pow10(to - from);
        return match factor {
            Some(f) => amount.checked_mul(f).map(|whole| (whole, 0)),
            None if amount == 0 => Some((0, 0)),
            None => None,
        };
    }
    match pow10(from - to) {
        Some(divisor) => Some((amount / divisor, amount % divisor)),
        // 10^k beyond u128: every u128 amount is less than one unit at `to`.
        None => Some((0, amount)),
    }
}

/// An incoming settlement plus what earlier ones left over, split for an account of scale
/// `account_scale`: the whole units credited now, and what that scale cannot hold, kept at the
/// finer of the two scales. `None` if the sums overflow u128 (an absurd amount).
pub fn split_incoming(
    leftover: Option<Quantity>,
    incoming: Quantity,
    account_scale: u8,
) -> Option<(u128, Option<Quantity>)> {
    let scale = leftover.map_or(incoming.scale, |l| l.scale.max(incoming.scale));
    let (incoming_at, _) = incoming.rescale(scale)?;
    let leftover_at = match leftover {
        Some(l) => l.rescale(scale)?.0,
        None => 0,
    };
    let total = incoming_at.checked_add(leftover_at)?;
    let (whole, rest) = rescale(total, scale, account_scale)?;
    Some((whole, (rest > 0).then_some(Quantity::new(rest, scale))))
}

/// 10^k, if it fits in a u128 (k <= 38).
fn pow10(k: u8) -> Option<u128> {
    10u128.checked_pow(u32::from(k))
}

fn parse_amount(text: &str) -> Result<u128, QuantityError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::NotDigits);
    }
    let significant = text.trim_start_matches('0');
    if significant.len() > AMOUNT_DIGITS_MAX {
        return Err(QuantityError::TooLarge);
    }
    // At most 38 digits: always fits.
    Ok(significant.parse::<u128>().unwrap_or(0))
}

/// The JSON form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    amount: String,
    scale: u8,
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Wire { amount: self.amount.to_string(), scale: self.scale }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let amount = parse_amount(&wire.amount).map_err(serde::de::Error::custom)?;
        Ok(Quantity { amount, scale: wire.scale })
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}e-{}", self.amount, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_rfc_example_and_refuses_anything_loose() {
        assert_eq!(Quantity::from_json(br#"{"amount":"254","scale":2}"#), Ok(Quantity::new(254, 2)));
        assert_eq!(Quantity::from_json(br#"{"amount":"0","scale":0}"#), Ok(Quantity::new(0, 0)));
        let max = u128::MAX.to_string();
        assert!(Quantity::from_json(format!(r#"{{"amount":"{max}","scale":9}}"#).as_bytes()).is_err());
        let big = "9".repeat(38);
        assert_eq!(
            Quantity::from_json(format!(r#"{{"amount":"{big}","scale":9}}"#).as_bytes()),
            Ok(Quantity::new(big.parse().unwrap(), 9))
        );
        for bad in [
            r#"{"amount":254,"scale":2}"#,
            r#"{"amount":"-1","scale":2}"#,
            r#"{"amount":"+1","scale":2}"#,
            r#"{"amount":" 1","scale":2}"#,
            r#"{"amount":"1e3","scale":2}"#,
            r#"{"amount":"","scale":2}"#,
            r#"{"amount":"1","scale":256}"#,
            r#"{"amount":"1","scale":-1}"#,
            r#"{"amount":"1"}"#,
            r#"{"amount":"1","scale":2,"extra":1}"#,
            r#"not json"#,
        ] {
            assert!(Quantity::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            Quantity::from_json(format!(r#"{{"amount":"1{}","scale":2}}"#, "0".repeat(38)).as_bytes()),
            Err(QuantityError::TooLarge)
        );
    }

    #[test]
    fn writes_the_amount_as_a_string() {
        assert_eq!(
            Quantity::new(u128::MAX, 255).to_json(),
            format!(r#"{{"amount":"{}","scale":255}}"#, u128::MAX)
        );
    }

    #[test]
    fn rescales_exactly_with_the_remainder() {
        // Engine scale 9, account scale 2: 1.234567890 is 123 cents and 4,567,890 nano-units left.
        assert_eq!(rescale(1_234_567_890, 9, 2), Some((123, 4_567_890)));
        assert_eq!(rescale(123, 2, 9), Some((1_230_000_000, 0)));
        assert_eq!(rescale(5, 3, 3), Some((5, 0)));
        assert_eq!(rescale(u128::MAX, 0, 1), None);
        assert_eq!(rescale(0, 0, 255), Some((0, 0)));
        assert_eq!(rescale(7, 0, 255), None);
        assert_eq!(rescale(u128::MAX, 255, 0), Some((0, u128::MAX)));
        assert_eq!(rescale(u128::MAX, 38, 0), Some((3, u128::MAX - 3 * 10u128.pow(38))));
    }

    #[test]
    fn incoming_settlements_keep_what_the_scale_cannot_hold() {
        // Engine scale 9, account scale 2.
        let (credited, left) = split_incoming(None, Quantity::new(1_234_567_890, 9), 2).unwrap();
        assert_eq!((credited, left), (123, Some(Quantity::new(4_567_890, 9))));
        let (credited, left) = split_incoming(left, Quantity::new(5_432_110, 9), 2).unwrap();
        assert_eq!((credited, left), (1, None));
        // A leftover at a finer scale than the new quantity: both are counted at the finer one.
        let (credited, left) = split_incoming(Some(Quantity::new(5, 3)), Quantity::new(1, 1), 1).unwrap();
        assert_eq!((credited, left), (1, Some(Quantity::new(5, 3))));
        // The account's scale finer than the engine's: everything is credited.
        assert_eq!(split_incoming(None, Quantity::new(7, 0), 2), Some((700, None)));
        assert_eq!(split_incoming(Some(Quantity::new(u128::MAX, 0)), Quantity::new(1, 0), 0), None);
    }

    proptest! {
        /// Over many callbacks nothing is lost: what was credited (at the account's scale) plus
        /// what is left over equals what came in.
        #[test]
        fn many_small_settlements_lose_nothing(amounts in proptest::collection::vec(0u128..10_000_000_000, 1..50), engine in 0u8..=12, account in 0u8..=12) {
            let (mut left, mut credited) = (None, 0u128);
            for amount in &amounts {
                let (now, rest) = split_incoming(left, Quantity::new(*amount, engine), account).unwrap();
                credited += now;
                left = rest;
            }
            let came_in: u128 = amounts.iter().sum();
            let scale = engine.max(account);
            let credited_at = rescale(credited, account, scale).unwrap().0;
            let left_at = left.map_or(0, |l| l.rescale(scale).unwrap().0);
            prop_assert_eq!(credited_at + left_at, rescale(came_in, engine, scale).unwrap().0);
        }

        #[test]
        fn down_then_up_loses_nothing(amount in any::<u128>(), from in 0u8..=40, to in 0u8..=40) {
            if let Some((whole, rest)) = rescale(amount, from, to) {
                if to < from {
                    // whole * 10^(from-to) + rest == amount, and rest is less than one unit at `to`.
                    let back = rescale(whole, to, from);
                    if let Some((up, 0)) = back {
                        prop_assert_eq!(up + rest, amount);
                    } else {
                        prop_assert_eq!(whole, 0);
                        prop_assert_eq!(rest, amount);
                    }
                } else {
                    prop_assert_eq!(rest, 0);
                    prop_assert_eq!(rescale(whole, to, from), Some((amount, 0)));
                }
            }
        }
    }
}
