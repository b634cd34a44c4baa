//! One account's outgoing payments in the memory store, changed only under the account's lock
//! (see `MemoryStore::with`), so a reservation's checks and its write are one step. The indexes
//! and per-payment records are the Redis store's (see its key schema): sorted sets by (score,
//! id), a payment's reservations by packet, those in flight by expiry, and the packets recorded,
//! so both stores answer alike. Totals are computed in u128 and checked before anything is
//! written.

use crate::balance::AMOUNT_MAX;
use crate::limits::{
    OUTGOING_DOUBT_BATCH_MAX, OUTGOING_PACKETS_MAX, OUTGOING_PAYMENT_DELETE_BATCH_MAX,
    OUTGOING_REJECT_CODES_MAX,
};
use crate::store::incoming::{from_millis, millis};
use crate::store::outgoing::{reject_label, retention_cutoff_ms, stop_reason, REJECTS_OTHER};
use crate::store::{
    AmountKind, CreatedOutgoing, NewOutgoingPayment, OutgoingPayment, OutgoingPaymentId, OutgoingState,
    PacketOutcome, Reserved, StoreError,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// (milliseconds since the epoch, id): the order of one index.
type Index = BTreeSet<(u64, OutgoingPaymentId)>;

#[derive(Debug, Default)]
pub(super) struct OutgoingPayments {
    by_id: HashMap<OutgoingPaymentId, Record>,
    /// Every payment by its creation: listing, newest first.
    all: Index,
    /// Payments still Sending, by their creation: resuming, oldest first.
    sending: Index,
    /// Ended payments, by when they ended: deleted after the retention.
    ended: Index,
}

/// One payment and its packets' records.
#[derive(Debug)]
struct Record {
    payment: OutgoingPayment,
    /// Packets reserved and not yet recorded (in flight or in doubt).
    packets: HashMap<u64, Reservation>,
    /// The reservations still in flight, by (expiry, packet): the claim moves the expired ones.
    in_flight: BTreeSet<(u64, u64)>,
    /// Packets whose outcome is recorded: a key is recorded once and never reserved again.
    done: HashSet<u64>,
    /// Reservations made in all (bounded by [`OUTGOING_PACKETS_MAX`]).
    packets_reserved: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reservation {
    amount: u64,
    min_delivered: u64,
    expires_ms: u64,
}

impl OutgoingPayments {
    /// `new` has passed [`NewOutgoingPayment::check`]. Ended payments past the retention are
    /// deleted first (so an id forgotten by now may be created again).
    pub(super) fn create(
        &mut self,
        account: &str,
        new: &NewOutgoingPayment,
        now: SystemTime,
    ) -> CreatedOutgoing {
        let now_ms = millis(now);
        self.delete_ended_before(retention_cutoff_ms(now_ms), OUTGOING_PAYMENT_DELETE_BATCH_MAX);
        if let Some(stored) = self.by_id.get(&new.id) {
            return CreatedOutgoing::Exists(stored.payment.clone());
        }
        let payment = new.created(account, now_ms);
        self.all.insert((now_ms, new.id.clone()));
        self.sending.insert((now_ms, new.id.clone()));
        let record = Record {
            payment: payment.clone(),
            packets: HashMap::new(),
            in_flight: BTreeSet::new(),
            done: HashSet::new(),
            packets_reserved: 0,
        };
        self.by_id.insert(new.id.clone(), record);
        CreatedOutgoing::Created(payment)
    }

    fn delete_ended_before(&mut self, cutoff_ms: u64, limit: usize) {
        let old: Vec<(u64, OutgoingPaymentId)> =
            self.ended.iter().take_while(|(at, _)| *at < cutoff_ms).take(limit).cloned().collect();
        for entry in old {
            self.ended.remove(&entry);
            if let Some(record) = self.by_id.remove(&entry.1) {
                self.all.remove(&(millis(record.payment.created_at), entry.1));
            }
        }
    }

    pub(super) fn get(&self, id: &OutgoingPaymentId) -> Option<&OutgoingPayment> {
        self.by_id.get(id).map(|r| &r.payment)
    }

    pub(super) fn newest(&self, limit: usize) -> Vec<OutgoingPayment> {
        self.all.iter().rev().take(limit).filter_map(|(_, id)| self.get(id).cloned()).collect()
    }

    pub(super) fn unfinished(&self, limit: usize) -> Vec<OutgoingPayment> {
        self.sending.iter().take(limit).filter_map(|(_, id)| self.get(id).cloned()).collect()
    }

    pub(super) fn claim(
        &mut self,
        id: &OutgoingPaymentId,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        grace: Duration,
    ) -> Option<OutgoingPayment> {
        let record = self.by_id.get_mut(id)?;
        let now_ms = millis(now);
        let p = &mut record.payment;
        if p.state != OutgoingState::Sending {
            return None;
        }
        if let Some((holder, until)) = &p.lease {
            if holder != owner && millis(*until) > now_ms {
                return None;
            }
        }
        let cutoff_ms = now_ms.saturating_sub(millis_of(grace));
        let expired: Vec<(u64, u64)> = record
            .in_flight
            .iter()
            .take_while(|(expires_ms, _)| *expires_ms < cutoff_ms)
            .take(OUTGOING_DOUBT_BATCH_MAX)
            .copied()
            .collect();
        for entry in expired {
            record.in_flight.remove(&entry);
            if let Some(r) = record.packets.get(&entry.1) {
                p.in_flight -= r.amount;
                p.in_flight_min_delivered -= r.min_delivered;
                p.in_doubt += r.amount;
            }
        }
        let until_ms = now_ms.saturating_add(millis_of(lease));
        p.lease = Some((owner.to_string(), from_millis(until_ms)));
        p.updated_at = from_millis(now_ms);
        Some(p.clone())
    }

    pub(super) fn set_connection(
        &mut self,
        id: &OutgoingPaymentId,
        owner: &str,
        destination: &str,
        shared_secret: &[u8; 32],
        now: SystemTime,
    ) -> Option<(String, [u8; 32])> {
        let p = &mut self.by_id.get_mut(id)?.payment;
        if !holds_lease(p, owner) {
            return None;
        }
        if let (Some(kept), Some(secret)) = (&p.destination, p.shared_secret) {
            return Some((kept.clone(), secret));
        }
        p.destination = Some(destination.to_string());
        p.shared_secret = Some(*shared_secret);
        p.updated_at = from_millis(millis(now));
        Some((destination.to_string(), *shared_secret))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn reserve(
        &mut self,
        id: &OutgoingPaymentId,
        owner: &str,
        packet: u64,
        amount: u64,
        min_delivered: u64,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Reserved {
        let Some(record) = self.by_id.get_mut(id) else { return Reserved::NotOwner };
        let p = &mut record.payment;
        if p.state != OutgoingState::Sending {
            return Reserved::NotSending(p.state);
        }
        if !holds_lease(p, owner) {
            return Reserved::NotOwner;
        }
        let expires_ms = millis(expires_at);
        let terms = Reservation { amount, min_delivered, expires_ms };
        if let Some(held) = record.packets.get(&packet) {
            let in_flight = record.in_flight.contains(&(held.expires_ms, packet));
            return if *held == terms && in_flight { Reserved::Reserved } else { Reserved::PacketTaken };
        }
        if record.done.contains(&packet) {
            return Reserved::PacketTaken;
        }
        if record.packets_reserved >= OUTGOING_PACKETS_MAX {
            return Reserved::TooManyPackets;
        }
        let limit = match p.kind {
            AmountKind::Source => p.amount,
            AmountKind::Delivered => p.source_max.unwrap_or(0),
        };
        let used = u128::from(p.sent) + u128::from(p.in_flight) + u128::from(p.in_doubt);
        if used + u128::from(amount) > u128::from(limit) {
            return Reserved::OverLimit { room: room(limit, used) };
        }
        let delivered_limit = match p.kind {
            AmountKind::Source => AMOUNT_MAX,
            AmountKind::Delivered => p.amount,
        };
        let delivered_used = u128::from(p.delivered) + u128::from(p.in_flight_min_delivered);
        if delivered_used + u128::from(min_delivered) > u128::from(delivered_limit) {
            return Reserved::OverDelivered { room: room(delivered_limit, delivered_used) };
        }
        // Every check passed (and the sums fit: each is at most a limit of at most AMOUNT_MAX).
        p.in_flight += amount;
        p.in_flight_min_delivered += min_delivered;
        p.last_packet = Some(p.last_packet.map_or(packet, |last| last.max(packet)));
        p.updated_at = from_millis(millis(now));
        record.packets_reserved += 1;
        record.packets.insert(packet, terms);
        record.in_flight.insert((expires_ms, packet));
        Reserved::Reserved
    }

    pub(super) fn record(
        &mut self,
        account: &str,
        id: &OutgoingPaymentId,
        packet: u64,
        outcome: PacketOutcome,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let Some(record) = self.by_id.get_mut(id) else { return Ok(false) };
        let Some(r) = record.packets.get(&packet).copied() else { return Ok(false) };
        let p = &mut record.payment;
        if let PacketOutcome::Fulfilled { delivered } = outcome {
            if u128::from(p.delivered) + u128::from(delivered) > u128::from(AMOUNT_MAX) {
                return Err(StoreError::Overflow(format!(
                    "{account} (outgoing payment {id}'s delivered total)"
                )));
            }
        }
        // Every check passed; from here on, only writes.
        if record.in_flight.remove(&(r.expires_ms, packet)) {
            p.in_flight -= r.amount;
            p.in_flight_min_delivered -= r.min_delivered;
        } else {
            p.in_doubt -= r.amount;
        }
        match outcome {
            PacketOutcome::Fulfilled { delivered } => {
                p.sent += r.amount;
                p.delivered += delivered;
                p.packets_fulfilled += 1;
            }
            PacketOutcome::Rejected { code } => {
                p.packets_rejected += 1;
                let label = reject_label(&code);
                let codes = p.rejects.keys().filter(|k| *k != REJECTS_OTHER).count();
                let label = if p.rejects.contains_key(label) || codes < OUTGOING_REJECT_CODES_MAX {
                    label
                } else {
                    REJECTS_OTHER
                };
                *p.rejects.entry(label.to_string()).or_insert(0) += 1;
            }
        }
        p.updated_at = from_millis(millis(now));
        record.packets.remove(&packet);
        record.done.insert(packet);
        Ok(true)
    }

    pub(super) fn finish(
        &mut self,
        id: &OutgoingPaymentId,
        owner: &str,
        state: OutgoingState,
        reason: &str,
        now: SystemTime,
    ) -> bool {
        if state == OutgoingState::Sending {
            return false;
        }
        let Some(record) = self.by_id.get_mut(id) else { return false };
        let p = &mut record.payment;
        if p.state != OutgoingState::Sending || !holds_lease(p, owner) {
            return false;
        }
        let now_ms = millis(now);
        p.in_doubt += p.in_flight;
        p.in_flight = 0;
        p.in_flight_min_delivered = 0;
        p.state = state;
        p.stop_reason = Some(stop_reason(reason).to_string());
        p.lease = None;
        p.updated_at = from_millis(now_ms);
        record.in_flight.clear();
        self.sending.remove(&(millis(p.created_at), id.clone()));
        self.ended.insert((now_ms, id.clone()));
        true
    }
}

fn holds_lease(p: &OutgoingPayment, owner: &str) -> bool {
    p.lease.as_ref().is_some_and(|(holder, _)| holder == owner)
}

/// What is left under `limit` after `used` (0 when none is).
fn room(limit: u64, used: u128) -> u64 {
    u128::from(limit).saturating_sub(used) as u64
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_millionth_packet_is_a_payments_last() {
        let mut payments = OutgoingPayments::default();
        let now = from_millis(1_700_000_000_000);
        let id = OutgoingPaymentId::parse("p").unwrap();
        let new = NewOutgoingPayment {
            id: id.clone(),
            receiver: "g.bob".into(),
            amount: 100,
            kind: AmountKind::Source,
            slippage: "0".into(),
            deadline: now + Duration::from_secs(60),
            source_max: None,
            probed: None,
        };
        payments.create("a", &new, now);
        let (lease, grace) = (Duration::from_secs(10), Duration::from_secs(2));
        assert!(payments.claim(&id, "A", now, lease, grace).is_some());
        // As if 999,999 packets had been reserved (and rejected) before.
        payments.by_id.get_mut(&id).unwrap().packets_reserved = OUTGOING_PACKETS_MAX - 1;
        let expires = now + Duration::from_secs(30);
        let reserve =
            |payments: &mut OutgoingPayments, packet| payments.reserve(&id, "A", packet, 1, 0, expires, now);
        assert_eq!(reserve(&mut payments, 1), Reserved::Reserved);
        assert_eq!(reserve(&mut payments, 2), Reserved::TooManyPackets);
        assert_eq!(reserve(&mut payments, 1), Reserved::Reserved, "a retry");
        let p = payments.get(&id).unwrap();
        assert_eq!((p.in_flight, p.last_packet), (1, Some(1)));
    }
}
