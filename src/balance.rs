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
    /// A settlement would move the balance up (or not at all): `settle_to` must not exceed the
    /// threshold, and what a settlement moves must be more than 0.
    #[error("settle_to {settle_to} exceeds the settle threshold {threshold}: a settlement would raise the balance")]
    SettleToAboveThreshold { threshold: Balance, settle_to: Balance },
    /// A settlement's recorded amount must be more than 0 and at most [`AMOUNT_MAX`].
    #[error("settlement amount {0} is not between 1 and the largest single change")]
    SettlementAmount(i128),
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

/// Whether `settle_to` may go with `threshold`: a settlement moves the balance from above the
/// threshold down to `settle_to`, so `settle_to` above it would move money the wrong way (the
/// balance raised, a negative settlement recorded). Config, the admin API and records read from
/// Redis are checked with this rule, and every store checks it again before it changes anything.
pub fn check_settle_bounds(threshold: Balance, settle_to: Balance) -> Result<(), BalanceError> {
    if settle_to > threshold {
        Err(BalanceError::SettleToAboveThreshold { threshold, settle_to })
    } else {
        Ok(())
    }
}

/// What beginning a settlement does to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlementStart {
    /// Moved out of the balance and owed to the settlement system: 1 ..= [`AMOUNT_MAX`].
    pub amount: u64,
    /// The balance after: `settle_to`, or above it when the difference was split.
    pub balance: Balance,
}

/// The settlement to begin when `balance` is above `threshold` (`None` when it is not): the
/// balance moves down to `settle_to`, the difference is the amount. *Split*: one settlement
/// moves at most [`AMOUNT_MAX`] (what one exact 64-bit change can carry, in every store); a
/// larger difference settles that much now and leaves the rest above the threshold, for the next
/// one. So the amount is always 1 ..= `AMOUNT_MAX` and the balance only ever goes down.
pub fn begin_settlement(
    balance: Balance,
    threshold: Balance,
    settle_to: Balance,
) -> Result<Option<SettlementStart>, BalanceError> {
    check_settle_bounds(threshold, settle_to)?;
    in_range(balance)?;
    in_range(threshold)?;
    in_range(settle_to)?;
    if balance <= threshold {
        return Ok(None);
    }
    // balance > threshold >= settle_to, all within i64: the difference is 1 ..= 2^64 - 1.
    let difference = balance - settle_to;
    let amount = difference.min(AMOUNT_MAX as Balance);
    debug_assert!(amount > 0);
    Ok(Some(SettlementStart { amount: amount as u64, balance: balance - amount }))
}

/// The balance after a pending settlement of `amount` is refunded (its system refused it for
/// good): the amount goes back, if in range. Recorded amounts are 1 ..= [`AMOUNT_MAX`]; any other
/// is refused, never applied.
pub fn refund_settlement(balance: Balance, amount: i128) -> Result<Balance, BalanceError> {
    if !(1..=AMOUNT_MAX as i128).contains(&amount) {
        return Err(BalanceError::SettlementAmount(amount));
    }
    credit(balance, amount as u64)
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

    #[test]
    fn a_settlement_never_raises_the_balance() {
        // The defect: threshold -10 and settle_to left at 0 "settled" -5 from a balance of -5.
        assert_eq!(
            begin_settlement(-5, -10, 0),
            Err(BalanceError::SettleToAboveThreshold { threshold: -10, settle_to: 0 })
        );
        assert_eq!(begin_settlement(-5, -10, -20), Ok(Some(SettlementStart { amount: 15, balance: -20 })));
        assert_eq!(begin_settlement(-10, -10, -20), Ok(None), "at the threshold is not above it");
        assert_eq!(
            begin_settlement(5, 10, 20),
            Err(BalanceError::SettleToAboveThreshold { threshold: 10, settle_to: 20 })
        );
        assert_eq!(begin_settlement(0, 0, 0), Ok(None));
        assert_eq!(begin_settlement(1, 0, 0), Ok(Some(SettlementStart { amount: 1, balance: 0 })));
        assert_eq!(check_settle_bounds(7, 7), Ok(()));
    }

    #[test]
    fn settlements_split_at_the_largest_change_and_converge() {
        let (max, min) = (i64::MAX as Balance, i64::MIN as Balance);
        let mut balance = max;
        let mut amounts = Vec::new();
        while let Some(start) = begin_settlement(balance, min, min).unwrap() {
            assert!(start.amount >= 1 && start.amount <= AMOUNT_MAX);
            assert_eq!(start.balance, balance - start.amount as Balance);
            amounts.push(start.amount);
            balance = start.balance;
        }
        assert_eq!(balance, min);
        assert_eq!(amounts, [AMOUNT_MAX, AMOUNT_MAX, 1]);
        assert_eq!(amounts.iter().map(|a| *a as i128).sum::<i128>(), max - min);
        assert_eq!(begin_settlement(max + 1, 0, 0), Err(BalanceError::Overflow));
    }

    #[test]
    fn refunds_take_only_recorded_amounts_and_stay_in_range() {
        assert_eq!(refund_settlement(-20, 15), Ok(-5));
        assert_eq!(refund_settlement(0, 0), Err(BalanceError::SettlementAmount(0)));
        assert_eq!(refund_settlement(0, -5), Err(BalanceError::SettlementAmount(-5)));
        assert_eq!(
            refund_settlement(0, AMOUNT_MAX as i128 + 1),
            Err(BalanceError::SettlementAmount(AMOUNT_MAX as i128 + 1))
        );
        assert_eq!(refund_settlement(i64::MAX as Balance, 1), Err(BalanceError::Overflow));
    }
}
