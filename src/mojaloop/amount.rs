//! FSPIOP amounts: decimal strings `^([0]|([1-9][0-9]{0,17}))([.][0-9]{0,3}[1-9])?$` (FSPIOP
//! v1.1 § 7.3.1): no sign, no exponent, no leading zero, at most 18 integer digits and 4
//! decimals, no trailing zero. The Connector refuses `"10.50"` (400, or 2001 inside a quote), so
//! every amount the node writes is in this shortest form, and every one it reads is checked
//! against it before it is converted.
//!
//! Conversion is exact both ways: an account's `u64` at its scale becomes the largest amount the
//! currency's decimals can carry, and what they cannot carry is returned as a leftover that stays
//! on the balance; an FSPIOP amount becomes an account amount only if the account's scale holds
//! it exactly.

use std::fmt;

/// Most decimals an FSPIOP amount carries.
pub const FSPIOP_DECIMALS_MAX: u8 = 4;
/// Most integer digits an FSPIOP amount carries.
const INTEGER_DIGITS_MAX: usize = 18;
/// 10^4: an amount is kept in ten-thousandths, the finest unit FSPIOP writes.
const TEN_THOUSANDTHS: u128 = 10_000;
/// 10^18 units, in ten-thousandths: the first amount with 19 integer digits.
const LIMIT: u128 = 1_000_000_000_000_000_000 * TEN_THOUSANDTHS;

/// A non-negative FSPIOP amount, in ten-thousandths of the currency's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FspiopAmount {
    ten_thousandths: u128,
}

/// Why an amount was refused or could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("{0:?} is not an FSPIOP amount (digits, at most 18 before and 4 after the point, no leading or trailing zeros, no sign)")]
    Malformed(String),
    #[error("the currency's decimals ({0}) are more than the 4 FSPIOP carries")]
    DecimalsTooMany(u8),
    #[error("the amount is zero in the currency's decimals: no transfer of zero is ever sent")]
    Zero,
    #[error("{amount} needs more decimals than the account's scale {scale} holds")]
    Inexact { amount: FspiopAmount, scale: u8 },
    #[error("{0} does not fit in an account amount")]
    TooLarge(FspiopAmount),
    #[error("the amount has more than the 18 integer digits FSPIOP carries")]
    BeyondFspiop,
}

impl FspiopAmount {
    /// Parses `text`, refusing anything the FSPIOP pattern refuses.
    pub fn parse(text: &str) -> Result<FspiopAmount, AmountError> {
        let malformed = || AmountError::Malformed(text.to_string());
        let (integer, fraction) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let integer_ok = digits(integer)
            && integer.len() <= INTEGER_DIGITS_MAX
            && (integer == "0" || !integer.starts_with('0'));
        if !integer_ok {
            return Err(malformed());
        }
        let mut value: u128 = integer.parse::<u128>().map_err(|_| malformed())? * TEN_THOUSANDTHS;
        if let Some(fraction) = fraction {
            let fraction_ok = digits(fraction)
                && fraction.len() <= usize::from(FSPIOP_DECIMALS_MAX)
                && !fraction.ends_with('0');
            if !fraction_ok {
                return Err(malformed());
            }
            let places = u32::try_from(fraction.len()).map_err(|_| malformed())?;
            let padding = 10u128.pow(u32::from(FSPIOP_DECIMALS_MAX) - places);
            value += fraction.parse::<u128>().map_err(|_| malformed())? * padding;
        }
        Ok(FspiopAmount { ten_thousandths: value })
    }

    /// The amount in ten-thousandths of the currency's unit (scale 4).
    pub fn ten_thousandths(&self) -> u128 {
        self.ten_thousandths
    }

    pub fn is_zero(&self) -> bool {
        self.ten_thousandths == 0
    }

    /// `amount` at `scale` as an FSPIOP amount in a currency of `decimals` decimals, with what
    /// those decimals cannot carry returned as a leftover at `scale` (it stays on the balance).
    /// Zero after the cut is [`AmountError::Zero`]: a transfer of zero is never sent.
    pub fn from_account(amount: u64, scale: u8, decimals: u8) -> Result<(FspiopAmount, u64), AmountError> {
        if decimals > FSPIOP_DECIMALS_MAX {
            return Err(AmountError::DecimalsTooMany(decimals));
        }
        let amount = u128::from(amount);
        // Work at the account's scale: the currency's last decimal is worth 10^(scale - decimals)
        // units there. A unit beyond u128 is beyond every u64 too: nothing is sendable.
        let (sendable, leftover) = if scale > decimals {
            match checked_pow10(scale - decimals) {
                Some(unit) => (amount - amount % unit, amount % unit),
                None => (0, amount),
            }
        } else {
            (amount, 0)
        };
        if sendable == 0 {
            return Err(AmountError::Zero);
        }
        // In ten-thousandths: a scale of at most 4 scales up exactly; above, `sendable` is a
        // multiple of 10^(scale - decimals) with decimals ≤ 4, so the division is exact (and
        // 10^(scale - 4) ≤ sendable < 2^64 exists).
        let ten_thousandths = if scale <= FSPIOP_DECIMALS_MAX {
            sendable * pow10(FSPIOP_DECIMALS_MAX - scale)
        } else {
            sendable / checked_pow10(scale - FSPIOP_DECIMALS_MAX).ok_or(AmountError::Zero)?
        };
        if ten_thousandths >= LIMIT {
            return Err(AmountError::BeyondFspiop);
        }
        let leftover = u64::try_from(leftover).expect("a remainder of a u64 fits in a u64");
        Ok((FspiopAmount { ten_thousandths }, leftover))
    }

    /// This amount at `scale`, exactly: refused when the scale cannot hold its decimals or the
    /// result does not fit a `u64`.
    pub fn to_account(&self, scale: u8) -> Result<u64, AmountError> {
        let value = if scale >= FSPIOP_DECIMALS_MAX {
            let factor = checked_pow10(scale - FSPIOP_DECIMALS_MAX).ok_or(AmountError::TooLarge(*self))?;
            self.ten_thousandths.checked_mul(factor).ok_or(AmountError::TooLarge(*self))?
        } else {
            let unit = pow10(FSPIOP_DECIMALS_MAX - scale);
            if !self.ten_thousandths.is_multiple_of(unit) {
                return Err(AmountError::Inexact { amount: *self, scale });
            }
            self.ten_thousandths / unit
        };
        u64::try_from(value).map_err(|_| AmountError::TooLarge(*self))
    }
}

impl FspiopAmount {
    /// The node's fee on this amount at `rate`, rounded up to what a currency of `decimals`
    /// decimals can carry (the node never charges less than its rate); `None` past u128.
    pub fn fee(&self, rate: &crate::rates::Decimal, decimals: u8) -> Option<FspiopAmount> {
        let unit = 10u128.pow(u32::from(FSPIOP_DECIMALS_MAX - decimals.min(FSPIOP_DECIMALS_MAX)));
        let exact = rate.ceil_of(self.ten_thousandths)?;
        Some(FspiopAmount { ten_thousandths: exact.div_ceil(unit) * unit })
    }

    /// `self − other`, or `None` below zero.
    pub fn checked_sub(&self, other: &FspiopAmount) -> Option<FspiopAmount> {
        Some(FspiopAmount { ten_thousandths: self.ten_thousandths.checked_sub(other.ten_thousandths)? })
    }
}

/// The shortest form: no trailing zeros, no point for a whole amount (`10`, `10.5`, `0.0001`).
impl fmt::Display for FspiopAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let integer = self.ten_thousandths / TEN_THOUSANDTHS;
        let fraction = self.ten_thousandths % TEN_THOUSANDTHS;
        if fraction == 0 {
            return write!(f, "{integer}");
        }
        let digits = format!("{fraction:04}");
        write!(f, "{integer}.{}", digits.trim_end_matches('0'))
    }
}

/// 10^exp for the exponents of at most [`FSPIOP_DECIMALS_MAX`] this module calls it with.
fn pow10(exp: u8) -> u128 {
    10u128.pow(u32::from(exp.min(FSPIOP_DECIMALS_MAX)))
}

fn checked_pow10(exp: u8) -> Option<u128> {
    10u128.checked_pow(u32::from(exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_connector_s_accepted_and_refused_strings() {
        for ok in ["10", "10.5", "0.0001", "0", "123456789012345678.9999", "1.01"] {
            let parsed = FspiopAmount::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(parsed.to_string(), ok, "prints back as it came");
        }
        for bad in [
            "10.50",
            "10.12345",
            "010",
            "1e2",
            "-5",
            "+5",
            "",
            ".5",
            "5.",
            "1,5",
            " 1",
            "1 ",
            "0.0",
            "00",
            "1234567890123456789",
            "１",
        ] {
            assert!(matches!(FspiopAmount::parse(bad), Err(AmountError::Malformed(_))), "{bad:?} accepted");
        }
    }

    #[test]
    fn account_amounts_become_the_shortest_string_and_keep_what_the_decimals_cannot_carry() {
        // USD at scale 9, 2 decimals: 10.50 USD and 0.003 USD left on the balance.
        let (amount, leftover) = FspiopAmount::from_account(10_503_000_000, 9, 2).unwrap();
        assert_eq!((amount.to_string().as_str(), leftover), ("10.5", 3_000_000));
        // Scale below the decimals: exact, nothing left.
        assert_eq!(FspiopAmount::from_account(1050, 2, 2).unwrap().0.to_string(), "10.5");
        assert_eq!(FspiopAmount::from_account(7, 0, 2).unwrap().0.to_string(), "7");
        // A currency without decimals (JPY-like) from scale 2.
        let (amount, leftover) = FspiopAmount::from_account(12_399, 2, 0).unwrap();
        assert_eq!((amount.to_string().as_str(), leftover), ("123", 99));
        // Four decimals from scale 4 and 6.
        assert_eq!(FspiopAmount::from_account(1, 4, 4).unwrap().0.to_string(), "0.0001");
        assert_eq!(
            FspiopAmount::from_account(123, 6, 4).unwrap(),
            (FspiopAmount::parse("0.0001").unwrap(), 23)
        );
        // The largest account amounts.
        // 18 integer digits at most: u64::MAX whole units has 20.
        assert_eq!(FspiopAmount::from_account(u64::MAX, 0, 2), Err(AmountError::BeyondFspiop));
        let (max, leftover) = FspiopAmount::from_account(999_999_999_999_999_999, 0, 2).unwrap();
        assert_eq!((max.to_string().as_str(), leftover), ("999999999999999999", 0));
        let (max, leftover) = FspiopAmount::from_account(u64::MAX, 2, 2).unwrap();
        assert_eq!((max.to_string().as_str(), leftover), ("184467440737095516.15", 0));
        let (max, leftover) = FspiopAmount::from_account(u64::MAX, 19, 4).unwrap();
        assert_eq!((max.to_string().as_str(), leftover), ("1.8446", 744_073_709_551_615));
    }

    #[test]
    fn a_zero_transfer_is_never_made_and_too_many_decimals_are_refused() {
        assert_eq!(FspiopAmount::from_account(0, 2, 2), Err(AmountError::Zero));
        // 0.009 USD at scale 9 is nothing in cents: it stays on the balance.
        assert_eq!(FspiopAmount::from_account(9_999_999, 9, 2), Err(AmountError::Zero));
        assert_eq!(FspiopAmount::from_account(1, 2, 5), Err(AmountError::DecimalsTooMany(5)));
        // Scales far beyond any currency: nothing is sendable, and nothing panics.
        assert_eq!(FspiopAmount::from_account(u64::MAX, 255, 4), Err(AmountError::Zero));
        assert_eq!(FspiopAmount::from_account(u64::MAX, 40, 0), Err(AmountError::Zero));
    }

    #[test]
    fn fspiop_amounts_become_account_amounts_only_exactly() {
        let a = FspiopAmount::parse("10.5").unwrap();
        assert_eq!(a.to_account(2), Ok(1050));
        assert_eq!(a.to_account(9), Ok(10_500_000_000));
        assert_eq!(a.to_account(1), Ok(105));
        assert_eq!(a.to_account(0), Err(AmountError::Inexact { amount: a, scale: 0 }));
        let tiny = FspiopAmount::parse("0.0001").unwrap();
        assert_eq!(tiny.to_account(3), Err(AmountError::Inexact { amount: tiny, scale: 3 }));
        assert_eq!(tiny.to_account(4), Ok(1));
        let big = FspiopAmount::parse("999999999999999999").unwrap();
        assert_eq!(big.to_account(2), Err(AmountError::TooLarge(big)));
        assert_eq!(
            FspiopAmount::parse("1").unwrap().to_account(255),
            Err(AmountError::TooLarge(FspiopAmount::parse("1").unwrap()))
        );
    }

    #[test]
    fn fees_round_up_to_the_currency_s_decimals() {
        let rate = |r: &str| crate::rates::Decimal::parse(r).unwrap();
        let amount = FspiopAmount::parse("100").unwrap();
        assert_eq!(amount.fee(&rate("0.01"), 2).unwrap().to_string(), "1");
        assert_eq!(amount.fee(&rate("0.0001"), 2).unwrap().to_string(), "0.01");
        assert_eq!(amount.fee(&rate("0.00001"), 2).unwrap().to_string(), "0.01", "never less than the rate");
        assert_eq!(amount.fee(&rate("0.00001"), 0).unwrap().to_string(), "1");
        assert_eq!(amount.fee(&rate("0"), 2).unwrap().to_string(), "0");
        let odd = FspiopAmount::parse("10.55").unwrap();
        assert_eq!(odd.fee(&rate("0.1"), 2).unwrap().to_string(), "1.06");
        let fee = odd.fee(&rate("0.1"), 2).unwrap();
        assert_eq!(odd.checked_sub(&fee).unwrap().to_string(), "9.49");
        assert_eq!(fee.checked_sub(&odd), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// What is sent plus what stays is the amount, to the unit; the string parses back.
        #[test]
        fn conversion_loses_nothing(amount in any::<u64>(), scale in 0u8..=45, decimals in 0u8..=4) {
            match FspiopAmount::from_account(amount, scale, decimals) {
                Ok((sent, leftover)) => {
                    prop_assert_eq!(FspiopAmount::parse(&sent.to_string()), Ok(sent));
                    let back = sent.to_account(scale).unwrap();
                    prop_assert_eq!(u128::from(back) + u128::from(leftover), u128::from(amount));
                    prop_assert!(!sent.is_zero());
                }
                Err(AmountError::Zero) => {
                    let unit = 10u128.checked_pow(u32::from(scale.saturating_sub(decimals)));
                    prop_assert!(unit.is_none_or(|unit| u128::from(amount) < unit));
                }
                Err(AmountError::BeyondFspiop) => {
                    let whole = u128::from(amount) / 10u128.pow(u32::from(scale.min(38)));
                    prop_assert!(whole >= 1_000_000_000_000_000_000);
                }
                Err(e) => prop_assert!(false, "{}", e),
            }
        }

        /// The parser never panics and accepts only what prints back the same.
        #[test]
        fn parsing_is_strict(text in "[0-9.+-e ]{0,24}") {
            if let Ok(amount) = FspiopAmount::parse(&text) {
                prop_assert_eq!(amount.to_string(), text);
            }
        }
    }
}
