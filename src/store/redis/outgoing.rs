//! The Redis store's outgoing payments: per payment one hash and three keys of its packets, and
//! three sorted sets per account (see the key schema in `mod.rs`), all under the paying
//! account's hash tag, so every step of a payment is one script on one cluster slot. Writes are
//! the `outgoing_*.lua` scripts; reads are plain commands, the same for both kinds of payment
//! (`record.rs`).

use super::answers::{
    OutgoingClaim, OutgoingConnection, OutgoingCreate, OutgoingFinish, OutgoingRecord, OutgoingReserve,
};
use super::record::{Fields, Record};
use super::{unexpected, Keys, RedisStore};
use crate::account::Account;
use crate::balance::AMOUNT_MAX;
use crate::limits::{
    OUTGOING_DOUBT_BATCH_MAX, OUTGOING_PACKETS_MAX, OUTGOING_PAYMENT_DELETE_BATCH_MAX,
    OUTGOING_REJECT_CODES_MAX,
};
use crate::store::incoming::{from_millis, millis};
use crate::store::outgoing::{reject_label, retention_cutoff_ms, stop_reason};
use crate::store::{
    AmountKind, CreatedOutgoing, NewOutgoingPayment, OutgoingPayment, OutgoingPaymentId, OutgoingState,
    PacketOutcome, ProbedRate, Reserved, StoreError,
};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The keys of one outgoing payment.
struct PaymentKeys {
    /// The payment's fields (hash).
    record: String,
    /// Its reservations not yet recorded, in flight or in doubt (hash: packet → terms).
    packets: String,
    /// Its reservations still in flight, by expiry (sorted set).
    in_flight: String,
    /// Its packets recorded (set).
    done: String,
}

impl Keys {
    fn outgoing(&self, id: &OutgoingPaymentId) -> PaymentKeys {
        let record = format!("{}{id}", self.outgoing_prefix);
        PaymentKeys {
            packets: format!("{record}:packets"),
            in_flight: format!("{record}:in-flight"),
            done: format!("{record}:done"),
            record,
        }
    }
}

impl RedisStore {
    pub(super) async fn create_outgoing(
        &self,
        account: &Account,
        new: &NewOutgoingPayment,
        now: SystemTime,
    ) -> Result<CreatedOutgoing, StoreError> {
        new.check(now)?;
        let k = self.keys(&account.id);
        let p = k.outgoing(&new.id);
        let now_ms = millis(now);
        let mut invocation = self.scripts.outgoing_create.key(&p.record);
        invocation.key(&k.outgoing_all).key(&k.outgoing_sending).key(&k.outgoing_ended);
        invocation.arg(new.id.as_str()).arg(&new.receiver).arg(new.amount).arg(kind_text(new.kind));
        invocation.arg(&new.slippage).arg(millis(new.deadline));
        invocation.arg(new.source_max.map(|m| m.to_string()).unwrap_or_default()).arg(now_ms);
        invocation
            .arg(&k.outgoing_prefix)
            .arg(retention_cutoff_ms(now_ms))
            .arg(OUTGOING_PAYMENT_DELETE_BATCH_MAX);
        match new.probed {
            Some(probed) => invocation.arg(probed.sent).arg(probed.delivered),
            None => invocation.arg("").arg(""),
        };
        let (code, fields, deleted): (i64, Vec<(String, String)>, i64) = self.script(&invocation).await?;
        if deleted > 0 {
            tracing::debug!(account = %account.id, deleted, "ended outgoing payments past their retention deleted");
        }
        match OutgoingCreate::read((code, fields)) {
            OutgoingCreate::Created => Ok(CreatedOutgoing::Created(new.created(&account.id, now_ms))),
            OutgoingCreate::Exists(fields) => {
                Ok(CreatedOutgoing::Exists(read_payment(&account.id, &new.id, fields)?))
            }
            OutgoingCreate::Unexpected(answer) => Err(unexpected("outgoing_create", answer)),
        }
    }

    pub(super) async fn read_outgoing(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
    ) -> Result<Option<OutgoingPayment>, StoreError> {
        self.read_record(account, id).await
    }

    pub(super) async fn list_outgoing(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OutgoingPayment>, StoreError> {
        let ids = self.index(&self.keys(&account.id).outgoing_all, limit, true).await?;
        self.read_records(account, ids).await
    }

    pub(super) async fn list_unfinished(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OutgoingPayment>, StoreError> {
        let ids = self.index(&self.keys(&account.id).outgoing_sending, limit, false).await?;
        self.read_records(account, ids).await
    }

    pub(super) async fn claim_outgoing(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        now: SystemTime,
        lease: Duration,
        grace: Duration,
    ) -> Result<Option<OutgoingPayment>, StoreError> {
        let p = self.keys(&account.id).outgoing(id);
        let now_ms = millis(now);
        let mut invocation = self.scripts.outgoing_claim.key(&p.record);
        invocation.key(&p.packets).key(&p.in_flight);
        invocation.arg(owner).arg(now_ms).arg(now_ms.saturating_add(millis_of(lease)));
        invocation.arg(now_ms.saturating_sub(millis_of(grace))).arg(OUTGOING_DOUBT_BATCH_MAX);
        match OutgoingClaim::read(self.script(&invocation).await?) {
            OutgoingClaim::Claimed(fields) => read_payment(&account.id, id, fields).map(Some),
            OutgoingClaim::NotTaken => Ok(None),
            OutgoingClaim::Malformed(what) => Err(malformed(account, id, &what, "not claimed")),
            OutgoingClaim::Unexpected(answer) => Err(unexpected("outgoing_claim", answer)),
        }
    }

    pub(super) async fn connect_outgoing(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        destination: &str,
        shared_secret: &[u8; 32],
    ) -> Result<Option<(String, [u8; 32])>, StoreError> {
        let p = self.keys(&account.id).outgoing(id);
        let mut invocation = self.scripts.outgoing_connection.key(&p.record);
        invocation.arg(owner).arg(destination).arg(hex::encode(shared_secret)).arg(millis(SystemTime::now()));
        match OutgoingConnection::read(self.script(&invocation).await?) {
            OutgoingConnection::Kept(destination, secret) => match secret_of(&secret) {
                Some(secret) => Ok(Some((destination, secret))),
                None => Err(malformed(account, id, &format!("shared_secret {secret:?}"), "read")),
            },
            OutgoingConnection::NotOwner => Ok(None),
            OutgoingConnection::Unexpected(answer) => Err(unexpected("outgoing_connection", answer)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn reserve_outgoing(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        packet: u64,
        amount: u64,
        min_delivered: u64,
        expires_at: SystemTime,
    ) -> Result<Reserved, StoreError> {
        let p = self.keys(&account.id).outgoing(id);
        let mut invocation = self.scripts.outgoing_reserve.key(&p.record);
        invocation.key(&p.packets).key(&p.in_flight).key(&p.done);
        invocation.arg(owner).arg(packet).arg(amount).arg(min_delivered).arg(millis(expires_at));
        invocation.arg(millis(SystemTime::now())).arg(OUTGOING_PACKETS_MAX);
        match OutgoingReserve::read(self.script(&invocation).await?, &account.id)? {
            OutgoingReserve::Answer(reserved) => Ok(reserved),
            OutgoingReserve::Malformed(what) => Err(malformed(account, id, &what, "nothing reserved")),
            OutgoingReserve::Unexpected(answer) => Err(unexpected("outgoing_reserve", answer)),
        }
    }

    pub(super) async fn record_outgoing(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        packet: u64,
        outcome: PacketOutcome,
    ) -> Result<bool, StoreError> {
        let p = self.keys(&account.id).outgoing(id);
        let mut invocation = self.scripts.outgoing_record.key(&p.record);
        invocation.key(&p.packets).key(&p.in_flight).key(&p.done).arg(packet);
        match outcome {
            PacketOutcome::Fulfilled { delivered } => invocation.arg("fulfilled").arg(delivered),
            PacketOutcome::Rejected { code } => invocation.arg("rejected").arg(reject_label(&code)),
        };
        invocation.arg(millis(SystemTime::now())).arg(OUTGOING_REJECT_CODES_MAX);
        match OutgoingRecord::read(self.script(&invocation).await?) {
            OutgoingRecord::Recorded => Ok(true),
            OutgoingRecord::Nothing => Ok(false),
            OutgoingRecord::OutOfRange => {
                Err(StoreError::Overflow(format!("{} (outgoing payment {id}'s delivered total)", account.id)))
            }
            OutgoingRecord::Malformed(what) => Err(malformed(account, id, &what, "nothing recorded")),
            OutgoingRecord::Unexpected(answer) => Err(unexpected("outgoing_record", answer)),
        }
    }

    pub(super) async fn finish_outgoing(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        state: OutgoingState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let state = match state {
            OutgoingState::Sending => return Ok(false),
            OutgoingState::Completed | OutgoingState::Failed => state_text(state),
        };
        let k = self.keys(&account.id);
        let p = k.outgoing(id);
        let mut invocation = self.scripts.outgoing_finish.key(&p.record);
        invocation.key(&p.in_flight).key(&k.outgoing_sending).key(&k.outgoing_ended);
        invocation.arg(id.as_str()).arg(owner).arg(state).arg(stop_reason(reason));
        invocation.arg(millis(SystemTime::now()));
        match OutgoingFinish::read(self.script(&invocation).await?) {
            OutgoingFinish::Finished => Ok(true),
            OutgoingFinish::NotFinished => Ok(false),
            OutgoingFinish::Malformed(what) => Err(malformed(account, id, &what, "not finished")),
            OutgoingFinish::Unexpected(answer) => Err(unexpected("outgoing_finish", answer)),
        }
    }
}

/// A script found a payment's record malformed (`what`: the field and its value) and changed
/// nothing.
fn malformed(account: &Account, id: &OutgoingPaymentId, what: &str, so: &str) -> StoreError {
    tracing::error!(account = %account.id, payment = %id, what, "an outgoing payment's record is malformed");
    StoreError::Corrupt(format!("outgoing payment {id} of {} holds {what}; {so}", account.id))
}

fn millis_of(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn kind_text(kind: AmountKind) -> &'static str {
    match kind {
        AmountKind::Source => "source",
        AmountKind::Delivered => "delivered",
    }
}

fn state_text(state: OutgoingState) -> &'static str {
    match state {
        OutgoingState::Sending => "sending",
        OutgoingState::Completed => "completed",
        OutgoingState::Failed => "failed",
    }
}

/// A shared secret as the scripts keep it: 64 hex digits.
fn secret_of(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

impl Record for OutgoingPayment {
    type Id = OutgoingPaymentId;
    const NAME: &'static str = "outgoing payment";

    fn parse_id(text: &str) -> Option<OutgoingPaymentId> {
        OutgoingPaymentId::parse(text)
    }

    fn key(keys: &Keys, id: &OutgoingPaymentId) -> String {
        keys.outgoing(id).record
    }

    fn read(account: &str, id: &OutgoingPaymentId, fields: Fields) -> Result<Self, StoreError> {
        read_payment(account, id, fields)
    }
}

/// A payment's record (its hash's fields, as the scripts write them) read back; a field missing
/// or not in the scripts' format is [`StoreError::Corrupt`].
fn read_payment(
    account: &str,
    id: &OutgoingPaymentId,
    fields: Fields,
) -> Result<OutgoingPayment, StoreError> {
    let malformed = |field: &str| {
        StoreError::Corrupt(format!(
            "outgoing payment {id} of {account}: field {field} is missing or malformed"
        ))
    };
    let get = |field: &str| fields.iter().find(|(name, _)| name == field).map(|(_, value)| value.as_str());
    let number = |field: &str| get(field).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| malformed(field));
    // A total or an amount: 0 ..= AMOUNT_MAX, as the scripts keep them.
    let total =
        |field: &str| number(field).and_then(|n| if n <= AMOUNT_MAX { Ok(n) } else { Err(malformed(field)) });
    let amount = total("amount").and_then(|n| if n >= 1 { Ok(n) } else { Err(malformed("amount")) })?;
    let kind = match get("kind") {
        Some("source") => AmountKind::Source,
        Some("delivered") => AmountKind::Delivered,
        _ => return Err(malformed("kind")),
    };
    let source_max = match get("source_max") {
        None => None,
        Some(_) => {
            Some(
                total("source_max")
                    .and_then(|n| if n >= 1 { Ok(n) } else { Err(malformed("source_max")) })?,
            )
        }
    };
    let probed = match (get("probed_sent"), get("probed_delivered")) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            let positive =
                |field: &str| total(field).and_then(|n| if n >= 1 { Ok(n) } else { Err(malformed(field)) });
            Some(ProbedRate { sent: positive("probed_sent")?, delivered: positive("probed_delivered")? })
        }
        _ => return Err(malformed("probed_sent")),
    };
    let state = match get("state") {
        Some("sending") => OutgoingState::Sending,
        Some("completed") => OutgoingState::Completed,
        Some("failed") => OutgoingState::Failed,
        _ => return Err(malformed("state")),
    };
    let mut rejects = BTreeMap::new();
    for (name, value) in &fields {
        if let Some(code) = name.strip_prefix("reject:") {
            rejects.insert(code.to_string(), value.parse::<u64>().map_err(|_| malformed(name))?);
        }
    }
    let last_packet = match get("last_packet") {
        None => None,
        Some(text) => Some(text.parse::<u64>().map_err(|_| malformed("last_packet"))?),
    };
    let shared_secret = match get("shared_secret") {
        None => None,
        Some(text) => Some(secret_of(text).ok_or_else(|| malformed("shared_secret"))?),
    };
    let lease = match (get("lease_owner"), get("lease_until_ms")) {
        (None, None) => None,
        (Some(owner), Some(_)) => Some((owner.to_string(), from_millis(number("lease_until_ms")?))),
        _ => return Err(malformed("lease_owner")),
    };
    Ok(OutgoingPayment {
        id: id.clone(),
        account: account.to_string(),
        receiver: get("receiver").ok_or_else(|| malformed("receiver"))?.to_string(),
        amount,
        kind,
        slippage: get("slippage").ok_or_else(|| malformed("slippage"))?.to_string(),
        deadline: from_millis(number("deadline_ms")?),
        source_max,
        probed,
        created_at: from_millis(number("created_ms")?),
        updated_at: from_millis(number("updated_ms")?),
        state,
        sent: total("sent")?,
        delivered: total("delivered")?,
        in_flight: total("in_flight")?,
        in_flight_min_delivered: total("in_flight_min_delivered")?,
        in_doubt: total("in_doubt")?,
        packets_fulfilled: total("packets_fulfilled")?,
        packets_rejected: total("packets_rejected")?,
        rejects,
        last_packet,
        stop_reason: get("stop_reason").map(str::to_string),
        destination: get("destination").map(str::to_string),
        shared_secret,
        lease,
    })
}
