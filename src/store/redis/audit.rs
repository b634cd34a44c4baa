//! `thitsax audit`'s reconciliation of one account: its balance against the sum of its journal
//! (and the checkpoint of the entries folded away).

use super::{parse_balance, RedisStore};
use crate::balance::Balance;
use crate::store::StoreError;

/// One account's reconciliation: its balance against the sum of its journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLine {
    pub account: String,
    pub balance: Balance,
    /// The checkpoint of folded entries plus the sum of the journal's entries.
    pub journal_sum: Balance,
    /// Entries folded into the checkpoint plus entries in the journal.
    pub entries: u64,
    /// Reservations of packets still in flight (their debits are in both figures).
    pub reserved: u64,
}

impl AuditLine {
    pub fn agrees(&self) -> bool {
        self.balance == self.journal_sum
    }
}

/// Audit attempts when entries newer than its snapshot keep being folded (only with a retention
/// far shorter than the configuration allows).
const AUDIT_ATTEMPTS: usize = 5;

/// Journal entries read per request while auditing.
const AUDIT_PAGE: usize = 1000;

impl RedisStore {
    /// Reconciles one account: at a snapshot, the checkpoint of the folded entries plus the
    /// journal's entries must sum to the balance. Entries may be folded while the journal is
    /// read (the sweeper does it on every instance): the audit then counts, from the checkpoint
    /// as it is after the read, every entry up to its `last`, and from the read the entries
    /// after it, so no entry is missed or counted twice.
    pub async fn audit(&self, account_id: &str) -> Result<AuditLine, StoreError> {
        for _ in 0..AUDIT_ATTEMPTS {
            if let Some(line) = self.audit_once(account_id).await? {
                return Ok(line);
            }
        }
        Err(StoreError::Unavailable(format!(
            "audit of {account_id}: entries newer than its snapshot kept being folded (journal retention too short?)"
        )))
    }

    /// One attempt; `None` if entries newer than the snapshot were folded meanwhile.
    async fn audit_once(&self, account_id: &str) -> Result<Option<AuditLine>, StoreError> {
        let k = self.keys(account_id);
        let snapshot = Self::on_account(&self.scripts.audit, &k);
        let (balance, last_id, reserved): (String, String, u64) = self.script(&snapshot).await?;
        let balance = parse_balance(&balance, account_id)?;
        let mut read: Vec<(EntryId, Balance)> = Vec::new();
        let mut from = "-".to_string();
        while !last_id.is_empty() {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&k.journal).arg(&from).arg(&last_id).arg("COUNT").arg(AUDIT_PAGE);
            let page: Vec<(String, Vec<(String, String)>)> = self.cmd(&cmd).await?;
            for (id, fields) in &page {
                let change =
                    fields.iter().find(|(name, _)| name == "change").map(|(_, v)| v.as_str()).unwrap_or("");
                let malformed =
                    || StoreError::Corrupt(format!("journal of {account_id} holds a malformed entry {id}"));
                read.push((
                    EntryId::parse(id).ok_or_else(malformed)?,
                    change.parse().map_err(|_| malformed())?,
                ));
            }
            match page.last() {
                Some((id, _)) if page.len() == AUDIT_PAGE && *id != last_id => from = format!("({id}"),
                _ => break,
            }
        }
        let mut folded = redis::cmd("HMGET");
        folded.arg(&k.checkpoint).arg("sum").arg("entries").arg("last");
        let (sum, count, last): (Option<String>, Option<u64>, Option<String>) = self.cmd(&folded).await?;
        let folded_last = match last.as_deref() {
            None => EntryId::default(),
            Some(text) => EntryId::parse(text)
                .ok_or_else(|| StoreError::Corrupt(format!("checkpoint of {account_id} is malformed")))?,
        };
        if !last_id.is_empty() && EntryId::parse(&last_id).is_some_and(|snap| folded_last > snap) {
            return Ok(None);
        }
        let mut journal_sum = parse_balance(sum.as_deref().unwrap_or("0"), account_id)?;
        let mut entries = count.unwrap_or(0);
        for (_, change) in read.iter().filter(|(id, _)| *id > folded_last) {
            journal_sum += change;
            entries += 1;
        }
        Ok(Some(AuditLine { account: account_id.to_string(), balance, journal_sum, entries, reserved }))
    }
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EntryId(u64, u64);

impl EntryId {
    fn parse(text: &str) -> Option<EntryId> {
        let (ms, seq) = text.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }
}
