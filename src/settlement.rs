//! The settlement hook point. This build keeps balances as credit between the node and its
//! accounts; settling them (RFC 0038 engines, Mojaloop, Rafiki) plugs in here, called after every
//! credit with the account's new balance, so the packet path does not change when it arrives.

use crate::account::Account;
use crate::balance::Balance;

/// Called after a Fulfill credited `account`. Reports a crossed threshold; nothing settles yet,
/// and nothing here may change a balance.
pub fn after_credit(account: &Account, balance: Balance) {
    if let Some(threshold) = account.settle_threshold {
        if balance > threshold {
            tracing::debug!(
                account = %account.id,
                balance = %balance,
                threshold = %threshold,
                "balance above settle_threshold; no settlement engine is configured in this build"
            );
        }
    }
}
