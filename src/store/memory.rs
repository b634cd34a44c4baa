//! Balances in this process: one mutex-guarded state per account. Lost on restart, which is why
//! production uses Redis; the embedded default needs nothing else running.

mod incoming;
mod outgoing;
mod payout;

use super::incoming::millis;
use super::{
    settlement_fingerprint, CreatedIncoming, CreatedOutgoing, CreatedPayout, DebitError, IncomingCredit,
    IncomingPayment, IncomingPaymentId, NewIncomingPayment, NewOutgoingPayment, NewPayout, OutgoingPayment,
    OutgoingPaymentId, OutgoingState, OwedWithdrawal, PacketId, PacketOutcome, Payout, PayoutAction,
    PayoutActionRefused, PayoutEnd, PendingSettlement, Receipt, ReceiveRefusal, ReplayKey, Reserved,
    SettlementClaim, SettlementEnd, Store, StoreError, Swept, INCOMING_KEY_RETENTION,
};
use crate::account::{Account, AccountId};
use crate::balance::{self, Balance, AMOUNT_MAX};
use crate::quantity::split_incoming;
use crate::quantity::Quantity;
use crate::settlement_id::SettlementId;
use incoming::{Admission, Payments, ReceivedMarks};
use outgoing::OutgoingPayments;
use payout::Payouts;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// One account's money: its balance and the reservations of packets still in flight.
#[derive(Debug, Default)]
struct AccountState {
    balance: Balance,
    /// Packet → (amount, expiry).
    reserved: HashMap<PacketId, (u64, SystemTime)>,
    /// Packets whose reservation the sweeper released → when: a late commit charges them again.
    swept: HashMap<PacketId, SystemTime>,
    /// Outgoing settlements begun and not finished: id → (amount, since).
    settlements: HashMap<SettlementId, (u64, SystemTime)>,
    /// Pending settlements' leases and references: id → (owner, lease end, reference).
    settlement_claims: HashMap<SettlementId, (String, SystemTime, Option<String>)>,
    /// What incoming settlements left that the account's scale cannot hold.
    leftover: Option<Quantity>,
    /// Incoming settlements' keys → (request fingerprint, credited, when), kept for
    /// [`INCOMING_KEY_RETENTION`].
    incoming: HashMap<String, (String, u64, SystemTime)>,
    /// Withdrawals owed at the Rafiki: the incoming credit's key → (amount, since).
    withdrawals_owed: HashMap<String, (u64, SystemTime)>,
    /// The incoming payments received on this account (a local one).
    payments: Payments,
    /// The packets `receive` credited lately, so that a retry changes nothing.
    received: ReceivedMarks,
    /// The payments the node sends from this account (a local one).
    outgoing: OutgoingPayments,
    /// Payouts from this account (a local one) into another network.
    payouts: Payouts,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    /// Account id → state. The outer lock is taken for writing only to add an account; packets
    /// take it for reading and lock just their account.
    accounts: RwLock<HashMap<AccountId, Arc<Mutex<AccountState>>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `change` on one account under its lock: check and write are one step, so two
    /// packets can never both pass a limit that only one fits under.
    fn with<T>(&self, id: &AccountId, change: impl FnOnce(&mut AccountState) -> T) -> T {
        let cell = self.accounts.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
        let cell = cell.unwrap_or_else(|| {
            let mut map = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            map.entry(id.clone()).or_default().clone()
        });
        // A poisoned lock means a panic while holding it; every change below writes only after
        // its checks pass, so the state is consistent and serving can go on.
        let mut state = cell.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state)
    }
}

/// Whether an incoming credit also owes a withdrawal at the Rafiki.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owing {
    Nothing,
    Withdrawal,
}

impl MemoryStore {
    /// One incoming settlement, once per key, and (`Owing::Withdrawal`) the withdrawal it owes
    /// in the same step.
    fn credit_incoming(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
        owing: Owing,
    ) -> IncomingCredit {
        let fingerprint = settlement_fingerprint(&quantity);
        let now = SystemTime::now();
        self.with(&account.id, |state| {
            state
                .incoming
                .retain(|_, (_, _, at)| now.duration_since(*at).unwrap_or_default() < INCOMING_KEY_RETENTION);
            if let Some((seen, credited, _)) = state.incoming.get(key) {
                return if *seen == fingerprint {
                    IncomingCredit::Repeated { credited: *credited }
                } else {
                    IncomingCredit::KeyReused
                };
            }
            let Some((whole, rest)) = split_incoming(state.leftover, quantity, account.asset_scale) else {
                return IncomingCredit::TooLarge;
            };
            let Ok(credited) = u64::try_from(whole) else { return IncomingCredit::TooLarge };
            let Ok(balance) = balance::credit(state.balance, credited) else {
                return IncomingCredit::TooLarge;
            };
            state.balance = balance;
            state.leftover = rest;
            state.incoming.insert(key.to_string(), (fingerprint, credited, now));
            // Nothing to withdraw when the whole amount went to the leftover: it is owed by the
            // credit that takes the leftover in.
            if owing == Owing::Withdrawal && credited > 0 {
                state.withdrawals_owed.insert(key.to_string(), (credited, now));
            }
            IncomingCredit::Credited { credited }
        })
    }
}

impl Store for MemoryStore {
    async fn debit_prepare(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
        expires_at: SystemTime,
    ) -> Result<Balance, DebitError> {
        self.with(&from.id, |state| {
            state.balance =
                balance::debit(state.balance, amount, from.min_balance).map_err(DebitError::Refused)?;
            state.reserved.insert(packet, (amount, expires_at));
            Ok(state.balance)
        })
    }

    async fn commit_prepare(&self, from: &Account, amount: u64, packet: PacketId) -> Result<(), StoreError> {
        self.with(&from.id, |state| {
            if state.reserved.remove(&packet).is_some() {
                return Ok(());
            }
            if state.swept.contains_key(&packet) {
                // Swept before the Fulfill was recorded: charge again, without the credit limit
                // (the money has already moved), and only once.
                state.balance = balance::debit(state.balance, amount, None)
                    .map_err(|_| StoreError::Overflow(from.id.to_string()))?;
                state.swept.remove(&packet);
            }
            Ok(())
        })
    }

    async fn reverse_prepare(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
    ) -> Result<Option<Balance>, StoreError> {
        self.with(&from.id, |state| {
            match state.reserved.get(&packet) {
                Some((reserved, _)) if *reserved == amount => {}
                _ => return Ok(None),
            }
            state.balance = balance::credit(state.balance, amount)
                .map_err(|_| StoreError::Overflow(from.id.to_string()))?;
            state.reserved.remove(&packet);
            Ok(Some(state.balance))
        })
    }

    async fn credit_fulfill(
        &self,
        to: &Account,
        amount: u64,
        _packet: PacketId,
    ) -> Result<Balance, StoreError> {
        self.with(&to.id, |state| {
            state.balance = balance::credit(state.balance, amount)
                .map_err(|_| StoreError::Overflow(to.id.to_string()))?;
            Ok(state.balance)
        })
    }

    async fn retry_credit(
        &self,
        to: &Account,
        amount: u64,
        packet: PacketId,
        _first_sent: SystemTime,
    ) -> Result<Balance, StoreError> {
        // A credit here either happened or returned an error that says it did not.
        self.credit_fulfill(to, amount, packet).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn sweep_expired(
        &self,
        account: &Account,
        cutoff: SystemTime,
        limit: usize,
        forget_before: SystemTime,
    ) -> Result<Swept, StoreError> {
        let now = SystemTime::now();
        self.with(&account.id, |state| {
            state.swept.retain(|_, at| *at >= forget_before);
            let expired: Vec<(PacketId, u64)> = state
                .reserved
                .iter()
                .filter(|(_, (_, expiry))| *expiry < cutoff)
                .take(limit)
                .map(|(p, (amount, _))| (*p, *amount))
                .collect();
            let mut swept = Swept::default();
            for (packet, amount) in &expired {
                let Ok(after) = balance::credit(state.balance, *amount) else {
                    swept.stuck += 1;
                    continue;
                };
                state.balance = after;
                state.reserved.remove(packet);
                state.swept.insert(*packet, now);
                swept.released += 1;
            }
            Ok(swept)
        })
    }

    async fn fold_journal(&self, _: &Account, _: SystemTime, _: usize) -> Result<usize, StoreError> {
        Ok(0)
    }

    async fn begin_settlement(
        &self,
        account: &Account,
        threshold: Balance,
        settle_to: Balance,
        id: SettlementId,
    ) -> Result<Option<u64>, StoreError> {
        self.with(&account.id, |state| {
            let rule = |rule| StoreError::Rule { account: account.id.to_string(), rule };
            let Some(start) = balance::begin_settlement(state.balance, threshold, settle_to).map_err(rule)?
            else {
                return Ok(None);
            };
            state.balance = start.balance;
            state.settlements.insert(id, (start.amount, SystemTime::now()));
            Ok(Some(start.amount))
        })
    }

    async fn finish_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        end: SettlementEnd,
    ) -> Result<Option<u64>, StoreError> {
        self.with(&account.id, |state| {
            let Some((amount, _)) = state.settlements.get(&id).copied() else { return Ok(None) };
            let refund = match end {
                SettlementEnd::Settled => 0,
                SettlementEnd::SettledBut { unpaid } => unpaid.min(amount),
                SettlementEnd::Refunded => amount,
            };
            if refund > 0 {
                state.balance = balance::refund_settlement(state.balance, refund.into())
                    .map_err(|_| StoreError::Overflow(account.id.to_string()))?;
            }
            state.settlements.remove(&id);
            state.settlement_claims.remove(&id);
            Ok(Some(amount))
        })
    }

    async fn claim_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<Option<SettlementClaim>, StoreError> {
        self.with(&account.id, |state| {
            if !state.settlements.contains_key(&id) {
                return Ok(None);
            }
            let reference = match state.settlement_claims.get(&id) {
                Some((holder, end, _)) if holder != owner && *end > now => return Ok(None),
                Some((_, _, reference)) => reference.clone(),
                None => None,
            };
            state.settlement_claims.insert(id, (owner.to_string(), until, reference.clone()));
            Ok(Some(SettlementClaim { reference }))
        })
    }

    async fn set_settlement_reference(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with(&account.id, |state| {
            if !state.settlements.contains_key(&id) {
                return Ok(None);
            }
            match state.settlement_claims.get_mut(&id) {
                Some((holder, _, kept)) if holder == owner => {
                    Ok(Some(kept.get_or_insert_with(|| reference.to_string()).clone()))
                }
                _ => Ok(None),
            }
        })
    }

    async fn settlement_credited(&self, account: &Account, key: &str) -> Result<Option<u64>, StoreError> {
        let now = SystemTime::now();
        self.with(&account.id, |state| {
            Ok(state
                .incoming
                .get(key)
                .filter(|(_, _, at)| now.duration_since(*at).unwrap_or_default() < INCOMING_KEY_RETENTION)
                .map(|(_, credited, _)| *credited))
        })
    }

    async fn create_payout(
        &self,
        account: &Account,
        new: &NewPayout,
        now: SystemTime,
    ) -> Result<CreatedPayout, StoreError> {
        new.check()?;
        self.with(&account.id, |state| {
            if let Some(existing) = state.payouts.existing(&new.id, now) {
                return Ok(existing);
            }
            state.balance = balance::debit(state.balance, new.amount, None)
                .map_err(|_| StoreError::Overflow(account.id.to_string()))?;
            Ok(CreatedPayout::Created(state.payouts.insert(&account.id, new, now)))
        })
    }

    async fn payout(&self, account: &Account, id: &str) -> Result<Option<Payout>, StoreError> {
        self.with(&account.id, |state| Ok(state.payouts.get(id, SystemTime::now())))
    }

    async fn open_payouts(&self, account: &Account, limit: usize) -> Result<Vec<Payout>, StoreError> {
        self.with(&account.id, |state| Ok(state.payouts.open(limit)))
    }

    async fn claim_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<Option<Payout>, StoreError> {
        self.with(&account.id, |state| Ok(state.payouts.claim(id, owner, now, until)))
    }

    async fn set_payout_reference(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        self.with(&account.id, |state| Ok(state.payouts.set_reference(id, owner, reference)))
    }

    async fn finish_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        end: &PayoutEnd,
        now: SystemTime,
    ) -> Result<Option<Payout>, StoreError> {
        self.with(&account.id, |state| Ok(state.payouts.finish(id, owner, end, now)))
    }

    async fn act_on_payout(
        &self,
        account: &Account,
        id: &str,
        action: PayoutAction,
        now: SystemTime,
    ) -> Result<Result<Payout, PayoutActionRefused>, StoreError> {
        self.with(&account.id, |state| {
            let payout = match state.payouts.check_action(id, now) {
                Ok(payout) => payout,
                Err(refused) => return Ok(Err(refused)),
            };
            if action == PayoutAction::Refund {
                state.balance = balance::credit(state.balance, payout.amount)
                    .map_err(|_| StoreError::Overflow(account.id.to_string()))?;
            }
            Ok(Ok(state.payouts.acted(id, action, now)))
        })
    }

    async fn pending_settlements(&self, account: &Account) -> Result<Vec<PendingSettlement>, StoreError> {
        self.with(&account.id, |state| {
            let mut pending: Vec<PendingSettlement> = state
                .settlements
                .iter()
                .map(|(id, (amount, since))| PendingSettlement { id: *id, amount: *amount, since: *since })
                .collect();
            pending.sort_by_key(|p| p.since);
            Ok(pending)
        })
    }

    async fn credit_settlement(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
    ) -> Result<IncomingCredit, StoreError> {
        Ok(self.credit_incoming(account, key, quantity, Owing::Nothing))
    }

    async fn credit_settlement_owing_withdrawal(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
    ) -> Result<IncomingCredit, StoreError> {
        Ok(self.credit_incoming(account, key, quantity, Owing::Withdrawal))
    }

    async fn withdrawals_owed(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OwedWithdrawal>, StoreError> {
        self.with(&account.id, |state| {
            let mut owed: Vec<OwedWithdrawal> = state
                .withdrawals_owed
                .iter()
                .map(|(key, (amount, since))| OwedWithdrawal {
                    key: key.clone(),
                    amount: *amount,
                    since: *since,
                })
                .collect();
            owed.sort_by(|a, b| (a.since, &a.key).cmp(&(b.since, &b.key)));
            owed.truncate(limit);
            Ok(owed)
        })
    }

    async fn finish_withdrawal(&self, account: &Account, key: &str) -> Result<bool, StoreError> {
        self.with(&account.id, |state| Ok(state.withdrawals_owed.remove(key).is_some()))
    }

    async fn balance(&self, account_id: &str) -> Result<Balance, StoreError> {
        let map = self.accounts.read().unwrap_or_else(|e| e.into_inner());
        Ok(map.get(account_id).map(|c| c.lock().unwrap_or_else(|e| e.into_inner()).balance).unwrap_or(0))
    }

    async fn create_incoming_payment(
        &self,
        account: &Account,
        new: &NewIncomingPayment,
        now: SystemTime,
    ) -> Result<CreatedIncoming, StoreError> {
        new.check(now)?;
        self.with(&account.id, |state| Ok(state.payments.create(&account.id, new, now)))
    }

    async fn incoming_payment(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> Result<Option<IncomingPayment>, StoreError> {
        self.with(&account.id, |state| Ok(state.payments.get(id).cloned()))
    }

    async fn incoming_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<IncomingPayment>, StoreError> {
        self.with(&account.id, |state| Ok(state.payments.newest(limit)))
    }

    async fn receive_stream(
        &self,
        account: &Account,
        payment: Option<&IncomingPaymentId>,
        amount: u64,
        packet: PacketId,
        replay: Option<ReplayKey>,
        now: SystemTime,
    ) -> Result<Receipt, StoreError> {
        let overflow = || StoreError::Overflow(account.id.to_string());
        if amount > AMOUNT_MAX {
            return Err(overflow());
        }
        let now_ms = millis(now);
        self.with(&account.id, |state| {
            state.received.forget_old(now_ms);
            if state.received.contains(&packet) {
                let received = payment.and_then(|id| state.payments.get(id)).map(|p| p.received);
                return Ok(Receipt::Repeated { received });
            }
            if replay.and_then(|key| state.received.carrier_of(&key)).is_some_and(|by| by != packet) {
                return Ok(Receipt::Refused(ReceiveRefusal::Replayed));
            }
            let admitted = match payment {
                None => None,
                Some(id) => match state.payments.admit(id, amount, now_ms) {
                    Admission::Fits { received, after } => Some((id, received, after)),
                    Admission::Refused(refusal) => return Ok(Receipt::Refused(refusal)),
                    Admission::TotalOutOfRange => return Err(overflow()),
                },
            };
            if amount == 0 {
                let received = admitted.map(|(_, received, _)| received);
                return Ok(Receipt::Received { balance: state.balance, received, completed: false });
            }
            // Every check passed; from here on, only writes.
            let balance = balance::credit(state.balance, amount).map_err(|_| overflow())?;
            state.balance = balance;
            state.received.insert(packet, replay, now_ms);
            let (received, completed) = match admitted {
                Some((id, _, after)) => (Some(after), state.payments.credit(id, after, now_ms)),
                None => (None, false),
            };
            Ok(Receipt::Received { balance, received, completed })
        })
    }

    async fn expire_incoming_payments(
        &self,
        account: &Account,
        now: SystemTime,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.with(&account.id, |state| Ok(state.payments.expire(millis(now), limit)))
    }

    async fn unhandled_completions(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<IncomingPayment>, StoreError> {
        self.with(&account.id, |state| Ok(state.payments.unhandled(limit)))
    }

    async fn mark_completion_handled(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> Result<bool, StoreError> {
        self.with(&account.id, |state| Ok(state.payments.mark_handled(id)))
    }

    async fn create_outgoing_payment(
        &self,
        account: &Account,
        new: &NewOutgoingPayment,
        now: SystemTime,
    ) -> Result<CreatedOutgoing, StoreError> {
        new.check(now)?;
        self.with(&account.id, |state| Ok(state.outgoing.create(&account.id, new, now)))
    }

    async fn outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
    ) -> Result<Option<OutgoingPayment>, StoreError> {
        self.with(&account.id, |state| Ok(state.outgoing.get(id).cloned()))
    }

    async fn outgoing_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OutgoingPayment>, StoreError> {
        self.with(&account.id, |state| Ok(state.outgoing.newest(limit)))
    }

    async fn claim_outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        grace: Duration,
    ) -> Result<Option<OutgoingPayment>, StoreError> {
        self.with(&account.id, |state| Ok(state.outgoing.claim(id, owner, now, lease, grace)))
    }

    async fn set_outgoing_connection(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        destination: &str,
        shared_secret: &[u8; 32],
    ) -> Result<Option<(String, [u8; 32])>, StoreError> {
        let now = SystemTime::now();
        self.with(&account.id, |state| {
            Ok(state.outgoing.set_connection(id, owner, destination, shared_secret, now))
        })
    }

    async fn reserve_outgoing_packet(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        packet: u64,
        amount: u64,
        min_delivered: u64,
        expires_at: SystemTime,
    ) -> Result<Reserved, StoreError> {
        let now = SystemTime::now();
        self.with(&account.id, |state| {
            Ok(state.outgoing.reserve(id, owner, packet, amount, min_delivered, expires_at, now))
        })
    }

    async fn record_outgoing_packet(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        packet: u64,
        outcome: PacketOutcome,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        self.with(&account.id, |state| state.outgoing.record(&account.id, id, packet, outcome, now))
    }

    async fn finish_outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        state: OutgoingState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now = SystemTime::now();
        self.with(&account.id, |s| Ok(s.outgoing.finish(id, owner, state, reason, now)))
    }

    async fn unfinished_outgoing_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OutgoingPayment>, StoreError> {
        self.with(&account.id, |state| Ok(state.outgoing.unfinished(limit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_shared_store_suite() {
        crate::store::suite::run(&MemoryStore::new(), "mem").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_debits_never_pass_the_limit_together() {
        crate::store::suite::concurrent_debits(Arc::new(MemoryStore::new()), "mem").await;
        crate::store::suite::concurrent_settlements(Arc::new(MemoryStore::new()), "mem").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_receives_never_pass_the_target_together() {
        crate::store::suite::concurrent_receives(Arc::new(MemoryStore::new()), "mem").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_never_pass_the_amount_and_only_the_lease_holder_reserves() {
        crate::store::suite::concurrent_outgoing_reservations(Arc::new(MemoryStore::new()), "mem").await;
    }
}
