//! The Redis store's payouts: one hash per payout (`<base>:payout:<id>`, its fields and lease),
//! an index of the account's open ones (`<base>:payouts-open`, by creation), under the account's
//! hash tag so every step is one `payout_*.lua` script on one slot. Ended payouts expire after
//! [`PAYOUT_RETENTION`].

use super::{millis, unexpected, Answer, RedisStore};
use crate::account::Account;
use crate::store::incoming::from_millis;
use crate::store::payout::{
    kept_error, CreatedPayout, NewPayout, Payout, PayoutAction, PayoutActionRefused, PayoutEnd, PayoutState,
    PAYOUT_RETENTION,
};
use crate::store::StoreError;
use std::collections::HashMap;
use std::time::SystemTime;

impl RedisStore {
    fn payout_key(&self, account: &Account, id: &str) -> String {
        format!("{}:{id}", self.keys(&account.id).payout)
    }

    pub(super) async fn make_payout(
        &self,
        account: &Account,
        new: &NewPayout,
        now: SystemTime,
    ) -> Result<CreatedPayout, StoreError> {
        new.check()?;
        let k = self.keys(&account.id);
        let key = self.payout_key(account, &new.id);
        let mut invocation = self.scripts.payout_create.key(&k.balance);
        invocation.key(&key).key(&k.payouts_open).key(&k.journal);
        invocation.arg(&new.id).arg(new.amount).arg(millis(now)).arg(&*account.id);
        invocation.arg(&new.id_type).arg(&new.id_value).arg(new.fsp_id.as_deref().unwrap_or(""));
        invocation.arg(&new.currency);
        let (code, text) = self.script::<Answer>(&invocation).await?;
        let read = |what| async move {
            self.read_payout(account, &new.id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("payout {} vanished after it was {what}", new.id)))
        };
        match code {
            1 => Ok(CreatedPayout::Created(read("created").await?)),
            0 => Ok(CreatedPayout::Exists(read("found").await?)),
            2 => Err(StoreError::Overflow(account.id.to_string())),
            _ => Err(unexpected("payout_create", (code, text))),
        }
    }

    pub(super) async fn read_payout(
        &self,
        account: &Account,
        id: &str,
    ) -> Result<Option<Payout>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.payout_key(account, id));
        let fields: HashMap<String, String> = self.cmd(&cmd).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse(id, &fields).map(Some).ok_or_else(|| {
            StoreError::Corrupt(format!("payout {id} of {} is malformed: {fields:?}", account.id))
        })
    }

    pub(super) async fn read_open_payouts(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<Payout>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(&self.keys(&account.id).payouts_open).arg(0).arg(limit - 1);
        let ids: Vec<String> = self.cmd(&cmd).await?;
        let mut open = Vec::with_capacity(ids.len());
        for id in ids {
            // Ended between the two reads: it is no longer open.
            if let Some(p) = self.read_payout(account, &id).await? {
                if matches!(p.state, PayoutState::Pending | PayoutState::Failed) {
                    open.push(p);
                }
            }
        }
        Ok(open)
    }

    pub(super) async fn take_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<Option<Payout>, StoreError> {
        let mut invocation = self.scripts.payout_claim.key(self.payout_key(account, id));
        invocation.arg(owner).arg(millis(now)).arg(millis(until));
        match self.script::<Answer>(&invocation).await? {
            (1, _) => self.read_payout(account, id).await,
            (0 | 2, _) => Ok(None),
            answer => Err(unexpected("payout_claim", answer)),
        }
    }

    pub(super) async fn keep_payout_reference(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        if reference.is_empty() || reference.contains(' ') {
            return Err(StoreError::InvalidPayout(format!("reference {reference:?} cannot be kept")));
        }
        let mut invocation = self.scripts.payout_reference.key(self.payout_key(account, id));
        invocation.arg(owner).arg(reference);
        match self.script::<Answer>(&invocation).await? {
            (1, kept) => Ok(Some(kept)),
            (0, _) => Ok(None),
            answer => Err(unexpected("payout_reference", answer)),
        }
    }

    pub(super) async fn end_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        end: &PayoutEnd,
        now: SystemTime,
    ) -> Result<Option<Payout>, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.payout_finish.key(self.payout_key(account, id));
        invocation.key(&k.payouts_open).arg(id).arg(owner);
        match end {
            PayoutEnd::Paid => invocation.arg("paid").arg(""),
            PayoutEnd::Failed(reason) => invocation.arg("failed").arg(kept_error(reason)),
        };
        invocation.arg(millis(now)).arg(PAYOUT_RETENTION.as_secs());
        match self.script::<Answer>(&invocation).await? {
            (1, _) => self.read_payout(account, id).await,
            (0, _) => Ok(None),
            answer => Err(unexpected("payout_finish", answer)),
        }
    }

    pub(super) async fn act_payout(
        &self,
        account: &Account,
        id: &str,
        action: PayoutAction,
        now: SystemTime,
    ) -> Result<Result<Payout, PayoutActionRefused>, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.payout_act.key(&k.balance);
        invocation.key(self.payout_key(account, id)).key(&k.payouts_open).key(&k.journal).arg(id);
        invocation.arg(match action {
            PayoutAction::Retry => "retry",
            PayoutAction::Refund => "refund",
        });
        invocation.arg(millis(now)).arg(PAYOUT_RETENTION.as_secs());
        let code = self.script::<Answer>(&invocation).await?;
        let payout = || async {
            self.read_payout(account, id)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("payout {id} vanished")))
        };
        match code {
            (1, _) => Ok(Ok(payout().await?)),
            (0, _) => Ok(Err(PayoutActionRefused::Unknown)),
            (3, _) => Ok(Err(PayoutActionRefused::NotFailed(Box::new(payout().await?)))),
            (2, _) => Err(StoreError::Overflow(account.id.to_string())),
            answer => Err(unexpected("payout_act", answer)),
        }
    }
}

/// A payout's hash, read back; `None` when a field is missing or malformed.
fn parse(id: &str, f: &HashMap<String, String>) -> Option<Payout> {
    let text = |k: &str| f.get(k).cloned();
    let ms = |k: &str| f.get(k)?.parse::<u64>().ok().map(from_millis);
    let some = |v: Option<String>| v.filter(|s| !s.is_empty());
    Some(Payout {
        id: id.to_string(),
        account: text("account")?,
        id_type: text("id_type")?,
        id_value: text("id_value")?,
        fsp_id: some(text("fsp_id")),
        currency: text("currency")?,
        amount: f.get("amount")?.parse().ok()?,
        state: PayoutState::parse(f.get("state")?)?,
        attempt: f.get("attempt")?.parse().ok()?,
        reference: some(text("reference")),
        earlier_references: f
            .get("earlier")
            .map(|e| e.split(' ').filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default(),
        error: some(text("error")),
        created_at: ms("created")?,
        updated_at: ms("updated")?,
    })
}
