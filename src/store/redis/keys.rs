//! The names of one account's keys (the table in the module's doc says what each holds). Every
//! key of an account shares its hash tag `{<account>}`, so an account's scripts and pipelines run
//! on one Redis Cluster slot.

/// The keys of one account.
pub(super) struct Keys {
    pub(super) balance: String,
    pub(super) reservations: String,
    pub(super) journal: String,
    pub(super) swept: String,
    pub(super) checkpoint: String,
    pub(super) settlements: String,
    /// Pending settlements' leases and references.
    pub(super) settlement_claims: String,
    /// Prefix of each payout's hash (`<this>:<id>`).
    pub(super) payout: String,
    pub(super) payouts_open: String,
    pub(super) leftover: String,
    /// Withdrawals owed at the Rafiki: incoming credit key → `<amount>:<since ms>`.
    pub(super) withdrawals_owed: String,
    /// Prefix of each incoming settlement's key record (`<this>:<sha256 of the key>`).
    pub(super) incoming: String,
    /// Prefix of each hour's credit marks (`<this>:<hour>`).
    pub(super) credited: String,
    /// Prefix of each incoming payment's record (`<this><id>`).
    pub(super) payment_prefix: String,
    pub(super) payments_all: String,
    pub(super) payments_open: String,
    pub(super) payments_unhandled: String,
    pub(super) payments_handled: String,
    /// Prefix of each outgoing payment's keys (`<this><id>`, `<this><id>:packets`, ...).
    pub(super) outgoing_prefix: String,
    pub(super) outgoing_all: String,
    pub(super) outgoing_sending: String,
    pub(super) outgoing_ended: String,
}

impl Keys {
    /// The keys of `account` under `prefix`.
    pub(super) fn new(prefix: &str, account: &str) -> Keys {
        let base = format!("{prefix}:{{{account}}}");
        Keys {
            balance: format!("{base}:balance"),
            reservations: format!("{base}:reservations"),
            journal: format!("{base}:journal"),
            swept: format!("{base}:swept"),
            checkpoint: format!("{base}:checkpoint"),
            settlements: format!("{base}:settlements"),
            settlement_claims: format!("{base}:settlement-claims"),
            payout: format!("{base}:payout"),
            payouts_open: format!("{base}:payouts-open"),
            leftover: format!("{base}:settlement-leftover"),
            withdrawals_owed: format!("{base}:withdrawals-owed"),
            incoming: format!("{base}:settlement-in"),
            credited: format!("{base}:credited"),
            payment_prefix: format!("{base}:incoming:"),
            payments_all: format!("{base}:incoming-all"),
            payments_open: format!("{base}:incoming-open"),
            payments_unhandled: format!("{base}:incoming-unhandled"),
            payments_handled: format!("{base}:incoming-handled"),
            outgoing_prefix: format!("{base}:outgoing:"),
            outgoing_all: format!("{base}:outgoing-all"),
            outgoing_sending: format!("{base}:outgoing-sending"),
            outgoing_ended: format!("{base}:outgoing-ended"),
        }
    }
}
