//! Balance rules as pure functions; the stores only apply them atomically.
//!
//! Sign convention: an account's balance is what the node owes the account. An incoming Prepare
//! debits its source (the source pays the node); a Fulfill credits the destination (the node now
//! owes it what it delivered). `min_balance` is the credit the node extends: the lowest the
//! balance may go, negative for credit, absent for none.
//!
//! Range: a balance always fits in an `i64`, in every store. Redis keeps balances with its exact
//! 64-bit integer commands (its Lua numbers are doubles and round past 2^53), so the in-memory
//! store obeys the same bound and both behave identically. The API type is `i128` so that the
//! arithmetic here can never wrap while checking that bound.

/// A balance in the account's asset scale.
pub type Balance = i128;

/// Why a balance change was refused. A business outcome, not a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    #[error("balance {balance} minus {amount} would fall below the minimum {min_balance}")]
    BelowMinimum { balance: Balance, amount: u64, min_balance: Balance },
    #[error("balance arithmetic overflowed")]
    Overflow,
}

/// The lowest and highest balance any store can hold.
pub const BALANCE_MIN: Balance = i64::MIN as Balance;
pub const BALANCE_MAX: Balance = i64::MAX as Balance;
/// The largest amount one packet may move: one exact 64-bit increment in every store. Larger
/// Prepares get F08 with this as the maximum, and STREAM senders split below it.
pub const AMOUNT_MAX: u64 = i64::MAX as u64;

/// `value` if it lies in the storable range.
fn in_range(value: Balance) -> Result<Balance, BalanceError> {
    if (BALANCE_MIN..=BALANCE_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(BalanceError::Overflow)
    }
}

/// The balance after debiting `amount`, if it stays at or above `min_balance` and in range.
pub fn debit(balance: Balance, amount: u64, min_balance: Option<Balance>) -> Result<Balance, BalanceError> {
    if amount > AMOUNT_MAX {
        return Err(BalanceError::Overflow);
    }
    let after = in_range(balance - amount as Balance)?;
    match min_balance {
        Some(min_balance) if after < min_balance => {
            Err(BalanceError::BelowMinimum { balance, amount, min_balance })
        }
        _ => Ok(after),
    }
}

/// The balance after crediting `amount` (a Fulfill, or the reversal of a debit), if in range.
pub fn credit(balance: Balance, amount: u64) -> Result<Balance, BalanceError> {
    if amount > AMOUNT_MAX {
        return Err(BalanceError::Overflow);
    }
    in_range(balance + amount as Balance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_respects_min_balance_at_the_edge() {
        assert_eq!(debit(10, 10, Some(0)), Ok(0));
        assert!(matches!(debit(10, 11, Some(0)), Err(BalanceError::BelowMinimum { .. })));
        assert_eq!(debit(0, 5, Some(-5)), Ok(-5));
        assert_eq!(debit(0, 0, Some(0)), Ok(0));
    }

    #[test]
    fn balances_stay_in_the_i64_range_every_store_can_hold() {
        assert_eq!(debit(0, i64::MAX as u64, None), Ok(-(i64::MAX as i128)));
        assert_eq!(debit(-1, i64::MAX as u64, None), Ok(i64::MIN as i128));
        assert_eq!(debit(-2, i64::MAX as u64, None), Err(BalanceError::Overflow));
        // One change moves at most AMOUNT_MAX, even where the result would fit.
        assert_eq!(debit(i64::MAX as i128, AMOUNT_MAX + 1, None), Err(BalanceError::Overflow));
        assert_eq!(debit(i64::MAX as i128, u64::MAX, None), Err(BalanceError::Overflow));
        assert_eq!(credit(i64::MIN as i128, u64::MAX), Err(BalanceError::Overflow));
        assert_eq!(credit(i64::MAX as i128, 1), Err(BalanceError::Overflow));
        assert_eq!(credit(i64::MIN as i128, AMOUNT_MAX), Ok(-1));
    }

    #[test]
    fn debit_then_credit_restores_the_balance_exactly() {
        for (b, a) in [(0i128, 1u64), (1 << 53, (1 << 53) + 1), (-7, 1 << 62), (i64::MAX as i128, AMOUNT_MAX)]
        {
            assert_eq!(credit(debit(b, a, None).unwrap(), a), Ok(b));
        }
    }
}
