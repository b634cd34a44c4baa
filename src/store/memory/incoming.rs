//! One account's incoming payments in the memory store, changed only under the account's lock
//! (see `MemoryStore::with`), so `receive`'s check and credit are one step. The indexes are the
//! Redis store's sorted sets (score, then id), so both stores list and scan in the same order.

use crate::balance::AMOUNT_MAX;
use crate::store::incoming::{from_millis, millis, retention_cutoff_ms};
use crate::store::ReplayKey;
use crate::store::{
    CompletionReason, CreatedIncoming, IncomingPayment, IncomingPaymentId, IncomingState, NewIncomingPayment,
    PacketId, ReceiveRefusal,
};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::SystemTime;

/// (milliseconds since the epoch, id): the order of one index.
type Index = BTreeSet<(u64, IncomingPaymentId)>;

#[derive(Debug, Default)]
pub(super) struct Payments {
    by_id: HashMap<IncomingPaymentId, IncomingPayment>,
    /// Every payment by its creation: listing, newest first.
    all: Index,
    /// Open payments by their expiry: the expiry scan.
    open: Index,
    /// Completions not yet handled, by when they completed: the outbox.
    unhandled: Index,
    /// Handled completions, by when they completed: deleted after the retention.
    handled: Index,
}

/// Whether a packet of a payment may be credited (the checks of `receive`'s step 2).
#[derive(Debug)]
pub(super) enum Admission {
    /// It fits: the payment's total now, and after the packet.
    Fits {
        received: u64,
        after: u64,
    },
    Refused(ReceiveRefusal),
    /// A payment without a target whose total would pass int64.
    TotalOutOfRange,
}

impl Payments {
    /// `new` has passed [`NewIncomingPayment::check`].
    pub(super) fn create(
        &mut self,
        account: &str,
        new: &NewIncomingPayment,
        now: SystemTime,
    ) -> CreatedIncoming {
        if let Some(stored) = self.by_id.get(&new.id) {
            return CreatedIncoming::Exists(stored.clone());
        }
        let (created_ms, expires_ms) = (millis(now), millis(new.expires_at));
        let payment = new.created(account, created_ms);
        self.all.insert((created_ms, new.id.clone()));
        self.open.insert((expires_ms, new.id.clone()));
        self.by_id.insert(new.id.clone(), payment.clone());
        CreatedIncoming::Created(payment)
    }

    pub(super) fn get(&self, id: &IncomingPaymentId) -> Option<&IncomingPayment> {
        self.by_id.get(id)
    }

    pub(super) fn newest(&self, limit: usize) -> Vec<IncomingPayment> {
        self.all.iter().rev().take(limit).filter_map(|(_, id)| self.by_id.get(id).cloned()).collect()
    }

    pub(super) fn unhandled(&self, limit: usize) -> Vec<IncomingPayment> {
        self.unhandled.iter().take(limit).filter_map(|(_, id)| self.by_id.get(id).cloned()).collect()
    }

    /// The checks of a packet of `amount` for payment `id` at `now_ms`. A payment found expired is
    /// completed here (its expiry is a fact, whatever becomes of the packet).
    pub(super) fn admit(&mut self, id: &IncomingPaymentId, amount: u64, now_ms: u64) -> Admission {
        let Some(payment) = self.by_id.get(id) else {
            return Admission::Refused(ReceiveRefusal::UnknownPayment);
        };
        let received = payment.received;
        if matches!(payment.state, IncomingState::Completed { .. }) {
            return Admission::Refused(ReceiveRefusal::Completed { received });
        }
        if millis(payment.expires_at) <= now_ms {
            self.complete(id, CompletionReason::Expired, now_ms);
            return Admission::Refused(ReceiveRefusal::Expired { received });
        }
        let after = u128::from(received) + u128::from(amount);
        if let Some(target) = payment.target {
            if after > u128::from(target) {
                return Admission::Refused(ReceiveRefusal::OverTarget { received, target });
            }
        }
        if after > u128::from(AMOUNT_MAX) {
            return Admission::TotalOutOfRange;
        }
        Admission::Fits { received, after: after as u64 }
    }

    /// A packet [`admit`](Self::admit)ted was credited: the payment's total becomes `after`.
    /// Returns whether that completed it.
    pub(super) fn credit(&mut self, id: &IncomingPaymentId, after: u64, now_ms: u64) -> bool {
        let Some(payment) = self.by_id.get_mut(id) else { return false };
        payment.received = after;
        let reached = payment.target == Some(after);
        if reached {
            self.complete(id, CompletionReason::TargetReached, now_ms);
        }
        reached
    }

    fn complete(&mut self, id: &IncomingPaymentId, reason: CompletionReason, now_ms: u64) {
        let Some(payment) = self.by_id.get_mut(id) else { return };
        debug_assert_eq!(payment.state, IncomingState::Open);
        payment.state = IncomingState::Completed { at: from_millis(now_ms), reason };
        self.open.remove(&(millis(payment.expires_at), id.clone()));
        self.unhandled.insert((now_ms, id.clone()));
    }

    /// Up to `limit` open payments expired at `now_ms` are completed (returns how many), and up
    /// to `limit` handled ones past the retention deleted.
    pub(super) fn expire(&mut self, now_ms: u64, limit: usize) -> usize {
        let expired: Vec<IncomingPaymentId> = self
            .open
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        for id in &expired {
            self.complete(id, CompletionReason::Expired, now_ms);
        }
        let cutoff = retention_cutoff_ms(now_ms);
        let old: Vec<(u64, IncomingPaymentId)> =
            self.handled.iter().take_while(|(at, _)| *at < cutoff).take(limit).cloned().collect();
        for entry in old {
            self.handled.remove(&entry);
            if let Some(payment) = self.by_id.remove(&entry.1) {
                self.all.remove(&(millis(payment.created_at), entry.1));
            }
        }
        expired.len()
    }

    pub(super) fn mark_handled(&mut self, id: &IncomingPaymentId) -> bool {
        let Some(payment) = self.by_id.get_mut(id) else { return false };
        let IncomingState::Completed { at, .. } = payment.state else { return false };
        let entry = (millis(at), id.clone());
        if !self.unhandled.remove(&entry) {
            return false;
        }
        payment.completion_handled = true;
        self.handled.insert(entry);
        true
    }
}

/// How long a received packet's mark is kept: a retry of `receive` within it is `Repeated`. The
/// Redis store looks in the marks of `now`'s hour and the hour before, so it recognizes a retry
/// for at least this long too.
pub(super) const RECEIVED_MARK_RETENTION_MS: u64 = 3_600_000;

/// The packets `receive` credited in the last [`RECEIVED_MARK_RETENTION_MS`], and the STREAM
/// packets they carried (by their replay keys).
#[derive(Debug, Default)]
pub(super) struct ReceivedMarks {
    packets: HashSet<PacketId>,
    replays: HashMap<ReplayKey, PacketId>,
    /// (when, packet, its replay key) in the order they were marked, to forget the oldest first.
    by_age: VecDeque<(u64, PacketId, Option<ReplayKey>)>,
}

impl ReceivedMarks {
    pub(super) fn contains(&self, packet: &PacketId) -> bool {
        self.packets.contains(packet)
    }

    /// The ILP packet that carried the STREAM packet `key`, if one was received.
    pub(super) fn carrier_of(&self, key: &ReplayKey) -> Option<PacketId> {
        self.replays.get(key).copied()
    }

    pub(super) fn insert(&mut self, packet: PacketId, replay: Option<ReplayKey>, now_ms: u64) {
        if self.packets.insert(packet) {
            if let Some(key) = replay {
                self.replays.insert(key, packet);
            }
            self.by_age.push_back((now_ms, packet, replay));
        }
    }

    /// Forgets the marks made before `now_ms` less the retention.
    pub(super) fn forget_old(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(RECEIVED_MARK_RETENTION_MS);
        while let Some((at, packet, replay)) = self.by_age.front().copied() {
            if at >= cutoff {
                break;
            }
            self.by_age.pop_front();
            self.packets.remove(&packet);
            if let Some(key) = replay {
                self.replays.remove(&key);
            }
        }
    }
}
