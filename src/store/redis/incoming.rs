//! The Redis store's incoming payments: one hash per payment and four sorted sets per account
//! (see the key schema in `mod.rs`), all under the account's hash tag, so `receive`'s check of
//! the payment and its credit of the balance are one script on one cluster slot. Writes are the
//! `incoming_*.lua` scripts; reads are plain commands, the same for both kinds of payment
//! (`record.rs`).

use super::answers::{IncomingCreate, IncomingHandled, IncomingReceive, ReceiveAnswer};
use super::record::{Fields, Record};
use super::{credit_marks, unexpected, Keys, RedisStore, CREDIT_MARKS_HOUR_S};
use crate::account::Account;
use crate::balance::AMOUNT_MAX;
use crate::store::incoming::{from_millis, millis, retention_cutoff_ms};
use crate::store::{
    CompletionReason, CreatedIncoming, IncomingPayment, IncomingPaymentId, IncomingState, NewIncomingPayment,
    PacketId, Receipt, ReplayKey, StoreError,
};
use std::time::{Duration, SystemTime};

impl Keys {
    /// The record of one incoming payment.
    fn payment(&self, id: &IncomingPaymentId) -> String {
        format!("{}{id}", self.payment_prefix)
    }
}

impl RedisStore {
    pub(super) async fn create_incoming(
        &self,
        account: &Account,
        new: &NewIncomingPayment,
        now: SystemTime,
    ) -> Result<CreatedIncoming, StoreError> {
        new.check(now)?;
        let k = self.keys(&account.id);
        let (created_ms, expires_ms) = (millis(now), millis(new.expires_at));
        let mut invocation = self.scripts.incoming_create.key(k.payment(&new.id));
        invocation.key(&k.payments_all).key(&k.payments_open);
        invocation.arg(new.id.as_str()).arg(new.target.map(|t| t.to_string()).unwrap_or_default());
        invocation.arg(expires_ms).arg(created_ms).arg(&new.metadata);
        match IncomingCreate::read(self.script(&invocation).await?) {
            IncomingCreate::Created => Ok(CreatedIncoming::Created(new.created(&account.id, created_ms))),
            IncomingCreate::Exists(fields) => {
                Ok(CreatedIncoming::Exists(read_payment(&account.id, &new.id, fields)?))
            }
            IncomingCreate::Unexpected(answer) => Err(unexpected("incoming_create", answer)),
        }
    }

    pub(super) async fn read_incoming(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> Result<Option<IncomingPayment>, StoreError> {
        self.read_record(account, id).await
    }

    pub(super) async fn list_incoming(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<IncomingPayment>, StoreError> {
        let ids = self.index(&self.keys(&account.id).payments_all, limit, true).await?;
        self.read_records(account, ids).await
    }

    pub(super) async fn list_unhandled(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<IncomingPayment>, StoreError> {
        let ids = self.index(&self.keys(&account.id).payments_unhandled, limit, false).await?;
        self.read_records(account, ids).await
    }

    pub(super) async fn receive_packet(
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
        let k = self.keys(&account.id);
        let hour_before = now.checked_sub(Duration::from_secs(CREDIT_MARKS_HOUR_S)).unwrap_or(now);
        let mut invocation = self.scripts.incoming_receive.key(&k.balance);
        invocation.key(&k.journal).key(credit_marks(&k, now)).key(credit_marks(&k, hour_before));
        // Without a payment the script touches no record: any key of the account's slot will do.
        invocation.key(payment.map(|id| k.payment(id)).unwrap_or_else(|| k.payment_prefix.clone()));
        invocation.key(&k.payments_open).key(&k.payments_unhandled);
        invocation.arg(packet.to_string()).arg(amount).arg(self.credit_marker_ttl_s).arg(millis(now));
        invocation.arg(payment.map(IncomingPaymentId::as_str).unwrap_or_default());
        invocation.arg(replay.map(|key| format!("s:{}", hex::encode(key.0))).unwrap_or_default());
        match IncomingReceive::read(self.script::<ReceiveAnswer>(&invocation).await?, &account.id)? {
            IncomingReceive::Credited { balance, received, completed } => {
                Ok(Receipt::Received { balance, received, completed })
            }
            IncomingReceive::Repeated { received } => Ok(Receipt::Repeated { received }),
            IncomingReceive::Refused(refusal) => Ok(Receipt::Refused(refusal)),
            IncomingReceive::OutOfRange => Err(overflow()),
            IncomingReceive::Malformed { field, value } => Err(StoreError::Corrupt(format!(
                "incoming payment {} of {} holds {field} = {value:?}; nothing received",
                payment.map(IncomingPaymentId::as_str).unwrap_or_default(),
                account.id
            ))),
            IncomingReceive::Unexpected(answer) => Err(unexpected("incoming_receive", answer)),
        }
    }

    pub(super) async fn expire_incoming(
        &self,
        account: &Account,
        now: SystemTime,
        limit: usize,
    ) -> Result<usize, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.incoming_expire.key(&k.payments_open);
        invocation.key(&k.payments_unhandled).key(&k.payments_handled).key(&k.payments_all);
        let now_ms = millis(now);
        invocation.arg(&k.payment_prefix).arg(now_ms).arg(limit).arg(retention_cutoff_ms(now_ms));
        let (expired, deleted): (i64, i64) = self.script(&invocation).await?;
        if deleted > 0 {
            tracing::debug!(account = %account.id, deleted, "handled incoming payments past their retention deleted");
        }
        usize::try_from(expired).map_err(|_| unexpected("incoming_expire", (expired, deleted.to_string())))
    }

    pub(super) async fn handle_completion(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> Result<bool, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.incoming_handled.key(k.payment(id));
        invocation.key(&k.payments_unhandled).key(&k.payments_handled).arg(id.as_str());
        match IncomingHandled::read(self.script(&invocation).await?) {
            IncomingHandled::Handled => Ok(true),
            IncomingHandled::NotPending => Ok(false),
            IncomingHandled::Malformed(state) => Err(StoreError::Corrupt(format!(
                "incoming payment {id} of {} is in the outbox with state {state:?}; left as it is",
                account.id
            ))),
            IncomingHandled::Unexpected(answer) => Err(unexpected("incoming_handled", answer)),
        }
    }
}

impl Record for IncomingPayment {
    type Id = IncomingPaymentId;
    const NAME: &'static str = "incoming payment";

    fn parse_id(text: &str) -> Option<IncomingPaymentId> {
        IncomingPaymentId::parse(text)
    }

    fn key(keys: &Keys, id: &IncomingPaymentId) -> String {
        keys.payment(id)
    }

    fn read(account: &str, id: &IncomingPaymentId, fields: Fields) -> Result<Self, StoreError> {
        read_payment(account, id, fields)
    }
}

/// A payment's record (its hash's fields, as the scripts write them) read back; a field missing
/// or not in the scripts' format is [`StoreError::Corrupt`].
fn read_payment(
    account: &str,
    id: &IncomingPaymentId,
    fields: Fields,
) -> Result<IncomingPayment, StoreError> {
    let malformed = |field: &str| {
        StoreError::Corrupt(format!(
            "incoming payment {id} of {account}: field {field} is missing or malformed"
        ))
    };
    let get = |field: &str| fields.iter().find(|(name, _)| name == field).map(|(_, value)| value.as_str());
    let number = |field: &str| get(field).and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| malformed(field));
    let target = match get("target") {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .ok()
                .filter(|t| (1..=AMOUNT_MAX).contains(t))
                .ok_or_else(|| malformed("target"))?,
        ),
    };
    let state = match get("state") {
        Some("open") => IncomingState::Open,
        Some("completed") => IncomingState::Completed {
            at: from_millis(number("completed_ms")?),
            reason: match get("reason") {
                Some("target") => CompletionReason::TargetReached,
                Some("expired") => CompletionReason::Expired,
                _ => return Err(malformed("reason")),
            },
        },
        _ => return Err(malformed("state")),
    };
    let completion_handled = match get("handled") {
        Some("0") => false,
        Some("1") => true,
        _ => return Err(malformed("handled")),
    };
    Ok(IncomingPayment {
        id: id.clone(),
        account: account.to_string(),
        target,
        received: number("received")?,
        expires_at: from_millis(number("expires_ms")?),
        metadata: get("metadata").ok_or_else(|| malformed("metadata"))?.to_string(),
        created_at: from_millis(number("created_ms")?),
        state,
        completion_handled,
    })
}
