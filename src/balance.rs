//! Balance rules as pure functions; the stores only apply them atomically.
//!
//! Sign convention: an account's balance is what the node owes the account. An incoming Prepare
//! debits its source (the source pays the node); a Fulfill credits the destination (the node now
//! owes it what it delivered). `min_balance` is the credit the node extends: the lowest the
//! balance may go, negative for credit, absent for none. Balances are `i128`, so no sequence of
//! `u64` amounts a real network can produce overflows them; the arithmetic is checked anyway.

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

/// The balance after debiting `amount`, if it stays at or above `min_balance`.
pub fn debit(balance: Balance, amount: u64, min_balance: Option<Balance>) -> Result<Balance, BalanceError> {
    let after = balance.checked_sub(amount as Balance).ok_or(BalanceError::Overflow)?;
    match min_balance {
        Some(min_balance) if after < min_balance => {
            Err(BalanceError::BelowMinimum { balance, amount, min_balance })
        }
        _ => Ok(after),
    }
}

/// The balance after crediting `amount` (a Fulfill, or the reversal of a debit).
pub fn credit(balance: Balance, amount: u64) -> Result<Balance, BalanceError> {
    balance.checked_add(amount as Balance).ok_or(BalanceError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debit_respects_min_balance_at_the_edge() {
        assert_eq!(debit(10, 10, Some(0)), Ok(0));
        assert!(matches!(debit(10, 11, Some(0)), Err(BalanceError::BelowMinimum { .. })));
        assert_eq!(debit(0, 5, Some(-5)), Ok(-5));
        assert_eq!(debit(0, u64::MAX, None), Ok(-(u64::MAX as i128)));
        assert_eq!(debit(0, 0, Some(0)), Ok(0));
    }

    #[test]
    fn arithmetic_is_checked_not_wrapping() {
        assert_eq!(debit(i128::MIN, 1, None), Err(BalanceError::Overflow));
        assert_eq!(credit(i128::MAX, 1), Err(BalanceError::Overflow));
        assert_eq!(credit(-(u64::MAX as i128), u64::MAX), Ok(0));
    }

    #[test]
    fn debit_then_credit_restores_the_balance_exactly() {
        for (b, a) in [(0i128, 1u64), (1 << 53, (1 << 53) + 1), (-7, u64::MAX), (i64::MAX as i128, u64::MAX)]
        {
            assert_eq!(credit(debit(b, a, None).unwrap(), a), Ok(b));
        }
    }
}
