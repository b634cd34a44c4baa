//! Amount conversion between assets and scales, exact.
//!
//! Prices are decimal strings parsed into exact `mantissa / 10^exponent` values; a conversion is
//! the rational `amount · price(src) · (1 − spread) · 10^dst_scale / (price(dst) · 10^src_scale)`,
//! computed in `u128` when it fits and in big integers when it does not, and rounded down: the
//! node never pays out more than it was paid. Nothing here touches floating point.

use crate::balance::AMOUNT_MAX;
use num_bigint::BigUint;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// A non-negative decimal, exact: `mantissa / 10^exponent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mantissa: u128,
    exponent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("expected a decimal number like \"1\", \"0.055\" or \"1250.5\"")]
    Syntax,
    #[error("more than 38 significant digits")]
    TooPrecise,
}

impl Decimal {
    pub const ONE: Decimal = Decimal { mantissa: 1, exponent: 0 };

    pub fn parse(s: &str) -> Result<Self, DecimalError> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits_ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits_ok(int) || !digits_ok(frac) || (s.contains('.') && frac.is_empty()) {
            return Err(DecimalError::Syntax);
        }
        let frac = frac.trim_end_matches('0');
        let digits = format!("{}{}", int.trim_start_matches('0'), frac);
        if digits.len() > 38 {
            return Err(DecimalError::TooPrecise);
        }
        let mantissa =
            if digits.is_empty() { 0 } else { digits.parse().map_err(|_| DecimalError::TooPrecise)? };
        Ok(Decimal { mantissa, exponent: frac.len() as u32 })
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// True when `self < 1`.
    pub fn is_below_one(&self) -> bool {
        // The exponent is at most 38 (one per digit), so 10^exponent fits in a u128.
        self.mantissa < 10u128.pow(self.exponent)
    }

    /// `ceil(amount × self)`, exact; `None` past u128.
    pub fn ceil_of(&self, amount: u128) -> Option<u128> {
        // The exponent is at most 38, so 10^exponent fits in a u128.
        Some(amount.checked_mul(self.mantissa)?.div_ceil(10u128.pow(self.exponent)))
    }

    /// `1 − self`, for a spread in [0, 1).
    fn one_minus(&self) -> Decimal {
        let one = 10u128.pow(self.exponent);
        Decimal { mantissa: one - self.mantissa, exponent: self.exponent }
    }
}

/// The shortest decimal form: no leading zeros, no trailing fractional zeros (`"0.055"`, `"1250"`).
/// `Decimal::parse(&d.to_string()) == d`.
impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = format!("{:0>width$}", self.mantissa, width = self.exponent as usize + 1);
        let (int, frac) = digits.split_at(digits.len() - self.exponent as usize);
        match frac.is_empty() {
            true => f.write_str(int),
            false => write!(f, "{int}.{frac}"),
        }
    }
}

/// Why an amount cannot be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("no exchange rate configured for {0}")]
    NoRate(&'static str),
    #[error("converted amount exceeds what one packet may move; the largest convertible source amount is {max_source}")]
    Overflow { max_source: u64 },
    #[error("amount rounds to zero")]
    RoundsToZero,
}

/// An asset as seen by conversion: its code and scale.
#[derive(Debug, Clone, Copy)]
pub struct Asset<'a> {
    pub code: &'a str,
    pub scale: u8,
}

/// Rates as written: decimal strings, checked by `config::rates_from_record` before use. The
/// config file's `[rates]`, the admin API's body and Redis's copy all have this form.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatesRecord {
    /// The fraction of value the node keeps on every packet, in [0, 1); "0" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<String>,
    /// Asset code → price in a common unit, above zero.
    #[serde(default)]
    pub prices: BTreeMap<String, String>,
}

/// The configured prices and spread. Immutable; replaced as a whole when rates change.
#[derive(Debug, Clone)]
pub struct Rates {
    prices: HashMap<Arc<str>, Decimal>,
    spread: Decimal,
    /// `1 − spread`: the share of the value the node passes on.
    keep: Decimal,
}

impl Rates {
    /// `spread` must be in [0, 1) and every price above zero (config validation says so first).
    pub fn new(prices: HashMap<Arc<str>, Decimal>, spread: Decimal) -> Self {
        assert!(spread.is_below_one(), "spread must be below 1");
        assert!(prices.values().all(|p| !p.is_zero()), "prices must be positive");
        Rates { prices, spread, keep: spread.one_minus() }
    }

    /// The rates as written in the config file, the admin API and Redis.
    pub fn to_record(&self) -> RatesRecord {
        RatesRecord {
            spread: Some(self.spread.to_string()),
            prices: self.prices.iter().map(|(code, price)| (code.to_string(), price.to_string())).collect(),
        }
    }

    /// Whether `code` has a configured price.
    pub fn has_price(&self, code: &str) -> bool {
        self.prices.contains_key(code)
    }

    /// Converts `amount` of `from` into `to`, rounding down.
    pub fn convert(&self, amount: u64, from: Asset<'_>, to: Asset<'_>) -> Result<u64, ConvertError> {
        let (src_price, dst_price) = if from.code == to.code {
            (Decimal::ONE, Decimal::ONE)
        } else {
            let src = self.prices.get(from.code).ok_or(ConvertError::NoRate("source asset"))?;
            let dst = self.prices.get(to.code).ok_or(ConvertError::NoRate("destination asset"))?;
            (*src, *dst)
        };
        Factor::new(src_price, dst_price, self.keep, from.scale, to.scale).apply(amount)
    }
}

/// `num_mantissa · 10^pow / den_mantissa` once the powers of ten are netted out.
struct Factor {
    num: u128,
    num_extra: u128,
    den: u128,
    /// Net power of ten: positive multiplies, negative divides.
    pow: i32,
}

impl Factor {
    fn new(src: Decimal, dst: Decimal, keep: Decimal, src_scale: u8, dst_scale: u8) -> Self {
        // value = amount · (src.m / 10^src.e) / (dst.m / 10^dst.e) · (keep.m / 10^keep.e) · 10^(dst_scale − src_scale)
        let pow = dst.exponent as i32 + dst_scale as i32
            - src.exponent as i32
            - keep.exponent as i32
            - src_scale as i32;
        Factor { num: src.mantissa, num_extra: keep.mantissa, den: dst.mantissa, pow }
    }

    fn apply(&self, amount: u64) -> Result<u64, ConvertError> {
        let out = self.fast(amount).unwrap_or_else(|| self.exact(amount));
        match u64::try_from(&out) {
            Ok(0) if amount > 0 => Err(ConvertError::RoundsToZero),
            Ok(v) if v <= AMOUNT_MAX => Ok(v),
            _ => Err(ConvertError::Overflow { max_source: self.max_source() }),
        }
    }

    /// The common case in `u128`; `None` if any step would overflow.
    fn fast(&self, amount: u64) -> Option<BigUint> {
        let ten = |p: i32| 10u128.checked_pow(p.unsigned_abs());
        let mut num = (amount as u128).checked_mul(self.num)?.checked_mul(self.num_extra)?;
        let mut den = self.den;
        if self.pow >= 0 {
            num = num.checked_mul(ten(self.pow)?)?;
        } else {
            den = den.checked_mul(ten(self.pow)?)?;
        }
        Some(BigUint::from(num / den))
    }

    fn exact(&self, amount: u64) -> BigUint {
        let (num, den) = self.big();
        BigUint::from(amount) * num / den
    }

    fn big(&self) -> (BigUint, BigUint) {
        let ten = BigUint::from(10u8).pow(self.pow.unsigned_abs());
        let mut num = BigUint::from(self.num) * BigUint::from(self.num_extra);
        let mut den = BigUint::from(self.den);
        if self.pow >= 0 {
            num *= ten;
        } else {
            den *= ten;
        }
        (num, den)
    }

    /// The largest source amount whose conversion is still at most AMOUNT_MAX (for F08 data).
    fn max_source(&self) -> u64 {
        let (num, den) = self.big();
        // floor(a · num / den) ≤ M  ⇔  a · num < (M + 1) · den
        let limit = (BigUint::from(AMOUNT_MAX) + 1u8) * den;
        let max = (limit - 1u8) / num;
        u64::try_from(&max).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    fn rates(spread: &str) -> Rates {
        let prices = [("USD", "1"), ("MXN", "0.055"), ("XBIG", "1234567890123456789.123456789")]
            .into_iter()
            .map(|(c, p)| (Arc::from(c), d(p)))
            .collect();
        Rates::new(prices, d(spread))
    }

    #[test]
    fn decimals_print_in_their_shortest_form_and_parse_back() {
        for (input, shown) in
            [("0", "0"), ("1", "1"), ("0.055", "0.055"), ("007.500", "7.5"), ("1250", "1250")]
        {
            assert_eq!(d(input).to_string(), shown, "{input}");
            assert_eq!(d(shown), d(input));
        }
        let long = "1234567890123456789.123456789";
        assert_eq!(d(long).to_string(), long);
    }

    #[test]
    fn rates_give_back_their_record() {
        let record = rates("0.002").to_record();
        assert_eq!(record.spread.as_deref(), Some("0.002"));
        assert_eq!(record.prices["MXN"], "0.055");
        assert_eq!(record.prices.len(), 3);
    }

    fn a(code: &str, scale: u8) -> Asset<'_> {
        Asset { code, scale }
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(d("0.055"), Decimal { mantissa: 55, exponent: 3 });
        assert_eq!(d("1.500"), Decimal { mantissa: 15, exponent: 1 });
        assert_eq!(d("007"), Decimal { mantissa: 7, exponent: 0 });
        assert!(d("0").is_zero());
        for bad in ["", ".5", "5.", "-1", "1e3", "1,5", " 1", "0x10"] {
            assert_eq!(Decimal::parse(bad), Err(DecimalError::Syntax), "{bad}");
        }
        assert_eq!(Decimal::parse(&"9".repeat(39)), Err(DecimalError::TooPrecise));
        assert!(d("0.999").is_below_one());
        assert!(!d("1").is_below_one());
    }

    #[test]
    fn same_asset_scale_changes_are_exact() {
        let r = rates("0");
        assert_eq!(r.convert(123, a("USD", 2), a("USD", 9)), Ok(1_230_000_000));
        assert_eq!(r.convert(1_230_000_000, a("USD", 9), a("USD", 2)), Ok(123));
        // Rounds down, in the node's favour.
        assert_eq!(r.convert(1_239_999_999, a("USD", 9), a("USD", 2)), Ok(123));
        assert_eq!(r.convert(AMOUNT_MAX, a("USD", 0), a("USD", 0)), Ok(AMOUNT_MAX));
        assert!(matches!(r.convert(u64::MAX, a("USD", 0), a("USD", 0)), Err(ConvertError::Overflow { .. })));
        assert_eq!(r.convert(0, a("USD", 9), a("USD", 2)), Ok(0));
    }

    #[test]
    fn rounding_to_zero_is_reported() {
        let r = rates("0");
        assert_eq!(r.convert(9_999_999, a("USD", 9), a("USD", 2)), Err(ConvertError::RoundsToZero));
    }

    #[test]
    fn overflow_reports_the_largest_convertible_amount() {
        let r = rates("0");
        let err = r.convert(u64::MAX, a("USD", 0), a("USD", 18)).unwrap_err();
        let ConvertError::Overflow { max_source } = err else { panic!("{err:?}") };
        assert_eq!(max_source, AMOUNT_MAX / 10u64.pow(18));
        assert!(r.convert(max_source, a("USD", 0), a("USD", 18)).is_ok());
        assert!(r.convert(max_source + 1, a("USD", 0), a("USD", 18)).is_err());
    }

    #[test]
    fn cross_currency_uses_price_ratio() {
        let r = rates("0");
        // 1 USD = 1/0.055 MXN = 18.1818... MXN → 1818 cents.
        assert_eq!(r.convert(100, a("USD", 2), a("MXN", 2)), Ok(1818));
        // 1000 MXN cents = 10 MXN = 0.55 USD.
        assert_eq!(r.convert(1000, a("MXN", 2), a("USD", 2)), Ok(55));
        assert_eq!(r.convert(1, a("USD", 0), a("EUR", 0)), Err(ConvertError::NoRate("destination asset")));
    }

    #[test]
    fn spread_is_kept_by_the_node() {
        let r = rates("0.01");
        assert_eq!(r.convert(1000, a("USD", 2), a("USD", 2)), Ok(990));
        assert_eq!(r.convert(1, a("USD", 2), a("USD", 2)), Err(ConvertError::RoundsToZero));
    }

    #[test]
    fn large_mantissas_take_the_exact_path() {
        let r = rates("0.000000000000000001");
        // 2^53 + 1 survives exactly where a double would round.
        let amount = (1u64 << 53) + 1;
        let out = r.convert(amount, a("XBIG", 0), a("XBIG", 0)).unwrap();
        assert_eq!(out, amount - 1); // amount · (1 − 1e-18), floored
        let big = r.convert(1, a("XBIG", 0), a("USD", 0)).unwrap();
        // 1234567890123456789.123456789 · (1 − 1e-18) = 1234567890123456787.888…
        assert_eq!(big, 1_234_567_890_123_456_787);
    }
}
