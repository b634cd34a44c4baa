//! Reading the payments back: every incoming and every outgoing payment is one hash on its
//! account's slot, listed by sorted sets of ids (see the key schema in `mod.rs`), so both kinds are
//! read alike, here: a payment is one HGETALL; a listing reads the ids, then the records in one
//! pipeline, and leaves out a record deleted meanwhile. Each kind's module parses its own fields.

use super::{Keys, RedisStore};
use crate::account::Account;
use crate::store::StoreError;

/// A hash's fields and their values, as HGETALL answers them.
pub(super) type Fields = Vec<(String, String)>;

/// A payment the store keeps as one hash, written by its scripts.
pub(super) trait Record: Sized {
    type Id;
    /// What an error calls it (`"incoming payment"`).
    const NAME: &'static str;
    /// An id as its indexes hold it.
    fn parse_id(text: &str) -> Option<Self::Id>;
    /// The key of its hash.
    fn key(keys: &Keys, id: &Self::Id) -> String;
    /// Its hash's fields read back; a field missing or not in the scripts' format is
    /// [`StoreError::Corrupt`].
    fn read(account: &str, id: &Self::Id, fields: Fields) -> Result<Self, StoreError>;
}

impl RedisStore {
    /// The payment `id` of the account, if there is one.
    pub(super) async fn read_record<R: Record>(
        &self,
        account: &Account,
        id: &R::Id,
    ) -> Result<Option<R>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(R::key(&self.keys(&account.id), id));
        let fields: Fields = self.cmd(&cmd).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        R::read(&account.id, id, fields).map(Some)
    }

    /// The payments whose ids `ids` lists, in its order, read in one pipeline; an id whose record
    /// is gone (deleted after its retention since the ids were read) is left out.
    pub(super) async fn read_records<R: Record>(
        &self,
        account: &Account,
        ids: Vec<String>,
    ) -> Result<Vec<R>, StoreError> {
        let k = self.keys(&account.id);
        let malformed_id =
            |id: &str| StoreError::Corrupt(format!("{} id {id:?} of {} is malformed", R::NAME, account.id));
        let ids = ids
            .iter()
            .map(|id| R::parse_id(id).ok_or_else(|| malformed_id(id)))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGETALL").arg(R::key(&k, id));
        }
        let records: Vec<Fields> = self.pipeline(&pipe).await?;
        let mut payments = Vec::with_capacity(ids.len());
        for (id, fields) in ids.iter().zip(records) {
            if !fields.is_empty() {
                payments.push(R::read(&account.id, id, fields)?);
            }
        }
        Ok(payments)
    }

    /// Up to `limit` ids of an index (a sorted set of ids), oldest or newest first.
    pub(super) async fn index(
        &self,
        key: &str,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<String>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd(if newest_first { "ZREVRANGE" } else { "ZRANGE" });
        cmd.arg(key).arg(0).arg(limit - 1);
        self.cmd(&cmd).await
    }
}
