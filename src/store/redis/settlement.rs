//! The Redis store's settlements: the outgoing ones begun and not finished (one hash per account,
//! id → amount and start), and the incoming ones, credited once per idempotency key, with what the
//! account's scale cannot hold left over for the next (see the key schema in `mod.rs`). Every key
//! is under the account's hash tag, so each step is one script on one cluster slot: the
//! `settlement_*.lua` scripts write; the pending settlements are read with one HGETALL.

use super::answers::{Begin, Finish, Incoming};
use super::{millis, unexpected, Answer, RedisStore};
use crate::account::Account;
use crate::balance::{Balance, BalanceError, AMOUNT_MAX};
use crate::quantity::{split_incoming, Quantity};
use crate::settlement_id::SettlementId;
use crate::store::{
    settlement_fingerprint, IncomingCredit, OwedWithdrawal, PendingSettlement, SettlementClaim,
    SettlementEnd, StoreError, INCOMING_KEY_RETENTION,
};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tries of an incoming settlement whose leftover kept changing under it.
const INCOMING_ATTEMPTS: usize = 10;

impl RedisStore {
    pub(super) async fn start_settlement(
        &self,
        account: &Account,
        threshold: Balance,
        settle_to: Balance,
        id: SettlementId,
    ) -> Result<Option<u64>, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.settlement_begin.key(&k.balance);
        invocation.key(&k.settlements).key(&k.journal);
        invocation.arg(id.to_string()).arg(threshold.to_string()).arg(settle_to.to_string());
        invocation.arg(millis(SystemTime::now()));
        match Begin::read(self.script::<Answer>(&invocation).await?, &account.id)? {
            Begin::Begun(amount) => Ok(Some(amount)),
            Begin::NotAbove => Ok(None),
            Begin::SettleToAboveThreshold => Err(StoreError::Rule {
                account: account.id.to_string(),
                rule: BalanceError::SettleToAboveThreshold { threshold, settle_to },
            }),
            Begin::Unexpected(answer) => Err(unexpected("settlement_begin", answer)),
        }
    }

    pub(super) async fn end_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        end: SettlementEnd,
    ) -> Result<Option<u64>, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.settlement_finish.key(&k.balance);
        invocation.key(&k.settlements).key(&k.journal).key(&k.settlement_claims).arg(id.to_string());
        match end {
            SettlementEnd::Settled => invocation.arg("settled").arg("0"),
            SettlementEnd::SettledBut { unpaid } => invocation.arg("settled").arg(unpaid),
            SettlementEnd::Refunded => invocation.arg("refunded").arg("0"),
        };
        match Finish::read(self.script::<Answer>(&invocation).await?, &account.id)? {
            Finish::Finished(amount) => Ok(Some(amount)),
            Finish::NotPending => Ok(None),
            Finish::OutOfRange => Err(StoreError::Overflow(account.id.to_string())),
            Finish::Malformed(record) => Err(StoreError::Corrupt(format!(
                "pending settlement {id} of {} is malformed: {record:?}",
                account.id
            ))),
            Finish::Unexpected(answer) => Err(unexpected("settlement_finish", answer)),
        }
    }

    pub(super) async fn take_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<Option<SettlementClaim>, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.settlement_claim.key(&k.settlements);
        invocation.key(&k.settlement_claims).arg(id.to_string()).arg(owner);
        invocation.arg(millis(now)).arg(millis(until));
        let (code, text) = self.script::<Answer>(&invocation).await?;
        match code {
            1 => Ok(Some(SettlementClaim { reference: (!text.is_empty()).then_some(text) })),
            0 | 2 => Ok(None),
            3 => Err(malformed_claim(account, id, &text)),
            _ => Err(unexpected("settlement_claim", (code, text))),
        }
    }

    pub(super) async fn keep_settlement_reference(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        if reference.is_empty() || reference.contains('|') {
            return Err(StoreError::Corrupt(format!("settlement reference {reference:?} cannot be kept")));
        }
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.settlement_reference.key(&k.settlements);
        invocation.key(&k.settlement_claims).arg(id.to_string()).arg(owner).arg(reference);
        let (code, text) = self.script::<Answer>(&invocation).await?;
        match code {
            1 => Ok(Some(text)),
            0 => Ok(None),
            3 => Err(malformed_claim(account, id, &text)),
            _ => Err(unexpected("settlement_reference", (code, text))),
        }
    }

    pub(super) async fn read_settlement_credited(
        &self,
        account: &Account,
        key: &str,
    ) -> Result<Option<u64>, StoreError> {
        let k = self.keys(&account.id);
        let key_hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()));
        let mut read = redis::cmd("GET");
        read.arg(format!("{}:{key_hash}", k.incoming));
        let record: Option<String> = self.cmd(&read).await?;
        let Some(record) = record else { return Ok(None) };
        // `<request fingerprint>:<credited>`
        let credited = record.rsplit_once(':').and_then(|(_, credited)| credited.parse().ok());
        credited.map(Some).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "incoming settlement record of {} is malformed: {record:?}",
                account.id
            ))
        })
    }

    pub(super) async fn read_pending_settlements(
        &self,
        account: &Account,
    ) -> Result<Vec<PendingSettlement>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&self.keys(&account.id).settlements);
        let entries: Vec<(String, String)> = self.cmd(&cmd).await?;
        let malformed =
            || StoreError::Corrupt(format!("pending settlements of {} are malformed", account.id));
        let mut pending = Vec::with_capacity(entries.len());
        for (id, value) in entries {
            let (amount, since) = value.split_once(':').ok_or_else(malformed)?;
            pending.push(PendingSettlement {
                id: SettlementId::parse(&id).ok_or_else(malformed)?,
                amount: amount.parse().map_err(|_| malformed())?,
                since: UNIX_EPOCH + Duration::from_millis(since.parse().map_err(|_| malformed())?),
            });
        }
        pending.sort_by_key(|p| p.since);
        Ok(pending)
    }

    /// One incoming settlement, once per key; `owing_withdrawal`: with the withdrawal it owes
    /// at the Rafiki kept in the same script.
    pub(super) async fn credit_incoming_settlement(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
        owing_withdrawal: bool,
    ) -> Result<IncomingCredit, StoreError> {
        let k = self.keys(&account.id);
        let key_hash = hex::encode(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()));
        let record = format!("{}:{key_hash}", k.incoming);
        let fingerprint = settlement_fingerprint(&quantity);
        // The split depends on the leftover: computed here exactly, applied by the script only
        // if the leftover is unchanged (another callback for the account may race this one).
        for _ in 0..INCOMING_ATTEMPTS {
            let mut read = redis::cmd("GET");
            read.arg(&k.leftover);
            let stored: Option<String> = self.cmd(&read).await?;
            let leftover = stored.as_deref().map(|text| parse_leftover(text, &account.id)).transpose()?;
            let (credited, rest) = match split_incoming(leftover, quantity, account.asset_scale) {
                Some((whole, rest)) if whole <= AMOUNT_MAX as u128 => (whole as u64, rest),
                // Nothing is written for a refused amount, so a repeat of it is refused again.
                _ => return Ok(IncomingCredit::TooLarge),
            };
            let mut invocation = self.scripts.settlement_incoming.key(&k.balance);
            invocation.key(&k.leftover).key(&record).key(&k.journal).key(&k.withdrawals_owed);
            invocation.arg(&fingerprint).arg(stored.unwrap_or_default());
            invocation.arg(rest.map(|r| format!("{}:{}", r.amount, r.scale)).unwrap_or_default());
            invocation.arg(credited).arg(INCOMING_KEY_RETENTION.as_secs()).arg(format!("in:{key_hash}"));
            match owing_withdrawal {
                true => invocation.arg(millis(SystemTime::now())).arg(key),
                false => invocation.arg("").arg(""),
            };
            match Incoming::read(self.script::<Answer>(&invocation).await?, &account.id)? {
                Incoming::Credited => return Ok(IncomingCredit::Credited { credited }),
                Incoming::Repeated(before) => return Ok(IncomingCredit::Repeated { credited: before }),
                Incoming::KeyReused => return Ok(IncomingCredit::KeyReused),
                Incoming::LeftoverChanged => continue,
                Incoming::OutOfRange => return Ok(IncomingCredit::TooLarge),
                Incoming::Unexpected(answer) => return Err(unexpected("settlement_incoming", answer)),
            }
        }
        Err(StoreError::Unavailable(format!(
            "incoming settlements for {} kept racing; try again",
            account.id
        )))
    }
}

impl RedisStore {
    pub(super) async fn read_withdrawals_owed(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OwedWithdrawal>, StoreError> {
        // One HGETALL: withdrawals are owed only while the Rafiki cannot be reached, so the hash
        // stays small; the limit bounds what one pass of the worker takes on.
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&self.keys(&account.id).withdrawals_owed);
        let entries: Vec<(String, String)> = self.cmd(&cmd).await?;
        let malformed = |value: &str| {
            StoreError::Corrupt(format!("owed withdrawal of {} is malformed: {value:?}", account.id))
        };
        let mut owed = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let (amount, since) = value.split_once(':').ok_or_else(|| malformed(&value))?;
            owed.push(OwedWithdrawal {
                key,
                amount: amount.parse().map_err(|_| malformed(&value))?,
                since: UNIX_EPOCH + Duration::from_millis(since.parse().map_err(|_| malformed(&value))?),
            });
        }
        owed.sort_by(|a, b| (a.since, &a.key).cmp(&(b.since, &b.key)));
        owed.truncate(limit);
        Ok(owed)
    }

    pub(super) async fn forget_withdrawal(&self, account: &Account, key: &str) -> Result<bool, StoreError> {
        // HDEL is atomic and says whether the field was there: one caller gets 1.
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(&self.keys(&account.id).withdrawals_owed).arg(key);
        let removed: i64 = self.cmd(&cmd).await?;
        Ok(removed == 1)
    }
}

/// A stored leftover, `<amount>:<scale>`.
fn parse_leftover(text: &str, account: &str) -> Result<Quantity, StoreError> {
    let parsed =
        text.split_once(':').and_then(|(a, s)| Some(Quantity::new(a.parse().ok()?, s.parse().ok()?)));
    parsed.ok_or_else(|| {
        StoreError::Corrupt(format!("settlement leftover of {account} is malformed: {text:?}"))
    })
}

fn malformed_claim(account: &Account, id: SettlementId, record: &str) -> StoreError {
    StoreError::Corrupt(format!("settlement {id} of {} has a malformed claim record: {record:?}", account.id))
}
