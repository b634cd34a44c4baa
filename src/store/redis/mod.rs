//! Balances in Redis (single server or Redis Cluster): they survive a restart of the node and are
//! shared by every ThitsaX instance pointed at the same Redis.
//!
//! # Key schema
//! Every key of an account carries the account id as its hash tag, so each script touches exactly
//! one cluster slot (one packet phase touches one account):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix>:{<account>}:balance` | string (int64) | the balance, what the node owes the account |
//! | `<prefix>:{<account>}:reservations` | sorted set | one member `<packet id>:<amount>` per Prepare still in flight, scored by its expiry (ms since the epoch) for the sweeper |
//! | `<prefix>:{<account>}:journal` | stream | one entry per balance change: `kind`, `packet`, `change` (signed), `balance` after |
//! | `<prefix>:{<account>}:checkpoint` | hash | the journal entries folded away so far (older than `store.journal_retention_s`): `sum` of their changes, `entries`, `last` id |
//! | `<prefix>:{<account>}:settlements` | hash | outgoing settlements begun and not finished: id (the Idempotency-Key) → `<amount>:<since ms>` |
//! | `<prefix>:{<account>}:settlement-claims` | hash | pending settlements' leases and the settlement system's own ids: settlement id → `<lease end ms>\|<owner>\|<reference or empty>`; removed when the settlement ends |
//! | `<prefix>:{<account>}:payout:<id>` | hash, TTL once ended | one payout: account, party, `currency`, `amount`, `state`, `attempt`, `reference`, `earlier`, `error`, `created`/`updated` ms, lease (`owner`, `until` ms) |
//! | `<prefix>:{<account>}:payouts-open` | sorted set | the account's pending and failed payouts by creation ms |
//! | `<prefix>:{<account>}:settlement-leftover` | string | `<amount>:<scale>` incoming settlements left that the account's scale cannot hold |
//! | `<prefix>:{<account>}:settlement-in:<sha256 of key>` | string, 48 h TTL | one incoming settlement's idempotency record: `<request fingerprint>:<credited>` |
//! | `<prefix>:{<account>}:withdrawals-owed` | hash | a Rafiki peer's money paid back through a rail that cannot wait for the Rafiki (Mojaloop), credited and not yet recorded at the Rafiki as a withdrawal: the incoming credit's key → `<amount>:<since ms>`, written by the credit's own script, removed once recorded |
//! | `<prefix>:{<account>}:credited:<hour>` | hash, TTL `store.sweep_tombstone_retention_s` + 1 h ([`RedisConfig::credit_marker_ttl_s`]) after its last field | packet id → `1` for each credit applied in that hour (hours since the epoch, by the node's clock when it sent the credit): a retry of the credit (answer lost, or replayed after a restart) checks it in constant time. One field per fulfilled packet, kept for the TTL; no retry is sent once its first attempt is older than the TTL less a margin, and owed writes older than `store.sweep_tombstone_retention_s` are not replayed at start-up |
//! | `<prefix>:{<account>}:swept` | sorted set | packet id scored by when the sweeper released its reservation (ms), so a late commit charges it once; kept for `store.sweep_tombstone_retention_s` |
//! | `<prefix>:{<account>}:incoming:<id>` | hash | one incoming payment received on the (local) account: `target` (absent for none), `received` (the total so far, int64), `expires_ms`, `created_ms`, `state` (`open` or `completed`), `completed_ms` and `reason` (`target` or `expired`) once completed, `metadata` (JSON text), `handled` (`1` once its completion hook acknowledged). Deleted [`INCOMING_PAYMENT_RETENTION_S`](crate::limits::INCOMING_PAYMENT_RETENTION_S) after it completed, once handled |
//! | `<prefix>:{<account>}:incoming-all` | sorted set | every incoming payment's id, scored by its creation (ms): the listing, newest first |
//! | `<prefix>:{<account>}:incoming-open` | sorted set | the open payments' ids, scored by their expiry (ms): the expiry scan |
//! | `<prefix>:{<account>}:incoming-unhandled` | sorted set | the completed payments' ids whose completion hook has not acknowledged, scored by their completion (ms): the outbox of completions, oldest first |
//! | `<prefix>:{<account>}:incoming-handled` | sorted set | the handled completions' ids, scored by their completion (ms): the expiry scan deletes those past the retention |
//! | `<prefix>:{<account>}:outgoing:<id>` | hash | one outgoing payment sent from the (local) account: `receiver`, `amount`, `kind` (`source` or `delivered`), `slippage`, `deadline_ms`, `source_max` (absent for a `source` payment), `probed_sent` and `probed_delivered` (a rate probed before, when given), `created_ms`, `updated_ms`, `state` (`sending`, `completed` or `failed`); the totals `sent`, `delivered`, `in_flight`, `in_flight_min_delivered`, `in_doubt`, `packets_fulfilled`, `packets_rejected` (int64, decimal); `packets_reserved` (reservations ever made, at most [`OUTGOING_PACKETS_MAX`](crate::limits::OUTGOING_PACKETS_MAX)) and `last_packet` (the highest key reserved; absent before the first); `reject:<code>` → count per ILP code, `reject:other`, and `reject_codes` (how many distinct codes, at most [`OUTGOING_REJECT_CODES_MAX`](crate::limits::OUTGOING_REJECT_CODES_MAX)); `stop_reason` once ended; `destination` and `shared_secret` (64 hex digits, **in clear**: the worker sends with it) once resolved; `lease_owner` and `lease_until_ms` while leased. Deleted [`OUTGOING_PAYMENT_RETENTION_S`](crate::limits::OUTGOING_PAYMENT_RETENTION_S) after it ended, by a later creation on the account, with the three keys below |
//! | `<prefix>:{<account>}:outgoing:<id>:packets` | hash | the payment's reservations not yet recorded (in flight or in doubt): packet key (decimal u64) → `<amount>:<min_delivered>:<expires_ms>` |
//! | `<prefix>:{<account>}:outgoing:<id>:in-flight` | sorted set | the packet keys of those still in flight, scored by their expiry (ms): a claim moves the ones past expiry and grace to in doubt (a reservation in `packets` and not here is in doubt) |
//! | `<prefix>:{<account>}:outgoing:<id>:done` | set | the packet keys whose outcome is recorded: recorded once, never reserved again |
//! | `<prefix>:{<account>}:outgoing-all` | sorted set | every outgoing payment's id, scored by its creation (ms): the listing, newest first |
//! | `<prefix>:{<account>}:outgoing-sending` | sorted set | the ids of the payments still sending, scored by their creation (ms): what to resume, oldest first |
//! | `<prefix>:{<account>}:outgoing-ended` | sorted set | the ids of the ended payments, scored by when they ended (ms): a creation deletes those past the retention |
//!
//! A packet the node receives itself for an incoming payment (`incoming_receive.lua`) is checked
//! against the payment and credited in one script: the payment, the balance, the journal and the
//! credit marks all share the account's slot. Its credit mark is the one a Fulfill's credit
//! writes, in the hash of the hour of the call's `now`.
//!
//! Every step of an outgoing payment (`outgoing_*.lua`: create, claim, connection, reserve,
//! record, finish) is one script on the paying account's slot, and none touches the account's
//! balance or journal: the money of the payment's packets moves through the packet path, like
//! any other packet's, so the audit is unaffected.
//!
//! `<prefix>` (config `store.prefix`) lets several deployments or test runs share one Redis.
//! The accounts and static routes shared by every instance have their own keys, under the hash
//! tag `{config}`: see [`shared_config`].
//!
//! # Scripts
//! One Lua script per event, in this folder, named after it, loaded once and called by SHA
//! (EVALSHA; reloaded automatically if Redis restarted without them). Each script's header gives
//! its KEYS, ARGV and return codes. The packet and settlement scripts return `{code, balance}`
//! with the balance as a decimal string ('' where the caller does not need it); the incoming
//! and outgoing payments' scripts return what their headers say. Lua numbers are doubles and would round
//! past 2^53, so no script converts an amount or a balance with `tonumber`: arithmetic is
//! DECRBY/INCRBY (exact int64), their reply is used only while it is below 2^53 in size and read
//! back with GET beyond, and comparisons are on the digits (see `prelude.lua`). The
//! scripts and the preludes each is built on are listed in `scripts.rs`.
//!
//! Per forwarded packet the hot path runs three scripts, one per phase and account (prepare on
//! the source; on a Fulfill, commit on the source and credit on the destination; or release on
//! a Reject): 10 Redis commands in all for a fulfilled packet (3 EVALSHA; DECRBY, ZADD, XADD;
//! ZREM; INCRBY, XADD, SET of the credit marker), still three round trips.
//!
//! # Failures
//! Any Redis error (connection refused, timeout, cluster down) fails the call and the packet gets
//! T00. An error Redis answered with, or a refused connection, is [`StoreError::Unavailable`]:
//! nothing was applied. A timeout or a connection lost after sending is
//! [`StoreError::Uncertain`]: the script may have run, so only idempotent calls (the commit, the
//! release) are sent again. Connections recover by themselves (the connection manager reconnects
//! with bounded backoff; the cluster client re-discovers its slots).
//!
//! Each script's answer is read into an enum of its own (`answers`). A code the binary does not
//! know (a script and binary out of step) or data it cannot read (a balance that is not an
//! integer, a malformed record) is [`StoreError::Corrupt`], logged at error level: T00 for a
//! packet, and never retried (retrying cannot mend it), never a business outcome such as T04.

mod answers;
mod audit;
mod incoming;
mod keys;
mod outgoing;
mod payout;
mod record;
mod scripts;
mod settlement;
pub mod shared_config;

use super::{
    CreatedIncoming, CreatedOutgoing, CreatedPayout, DebitError, IncomingCredit, IncomingPayment,
    IncomingPaymentId, NewIncomingPayment, NewOutgoingPayment, NewPayout, OutgoingPayment, OutgoingPaymentId,
    OutgoingState, OwedWithdrawal, PacketId, PacketOutcome, Payout, PayoutAction, PayoutActionRefused,
    PayoutEnd, PendingSettlement, Receipt, ReplayKey, Reserved, SettlementClaim, SettlementEnd, Store,
    StoreError, Swept,
};
use crate::account::Account;
use crate::balance::{Balance, BalanceError, AMOUNT_MAX};
use crate::quantity::Quantity;
use crate::settlement_id::SettlementId;
use answers::{Commit, Credit, CreditAgain, Prepare, Release};
use keys::Keys;
use redis::{Script, ScriptInvocation};
use scripts::Scripts;
use shared_config::{ConfigKeys, ConfigScripts};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the Redis store connects and how patiently.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// One URL for a single server, several for the seed nodes of a Redis Cluster.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// Namespace of every key, so several deployments can share one Redis.
    pub prefix: String,
    /// Each command's answer must arrive within this, or the packet gets T00.
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
    /// How long each fulfilled packet's credit marker lives (see the key schema): longer than
    /// any retry of its credit can happen, including a replay of owed writes at start-up.
    pub credit_marker_ttl_s: u64,
}

#[derive(Clone)]
enum Connection {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

pub struct RedisStore {
    connection: Connection,
    prefix: String,
    scripts: Scripts,
    config_scripts: ConfigScripts,
    config_keys: ConfigKeys,
    /// Where a pub/sub subscriber connects (any one of them: PUBLISH reaches every cluster node).
    urls: Vec<String>,
    connect_timeout: Duration,
    credit_marker_ttl_s: u64,
    /// Each account's key names, built once: every packet phase needs them.
    keys: RwLock<HashMap<Arc<str>, Arc<Keys>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish()
    }
}

/// What a script answered: its code and the balance after it, exactly.
type Answer = (i64, String);

impl RedisStore {
    /// Connects (and checks the connection) before the node starts serving.
    pub async fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let unavailable = |e: redis::RedisError| StoreError::Unavailable(e.to_string());
        let connection = if config.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(config.urls.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(3)
                .build()
                .map_err(unavailable)?;
            Connection::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        } else {
            let url = config.urls.first().ok_or_else(|| StoreError::Unavailable("no Redis URL".into()))?;
            let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
            let manager_config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout))
                .set_number_of_retries(3)
                .set_max_delay(Duration::from_secs(2));
            Connection::Single(
                client.get_connection_manager_with_config(manager_config).await.map_err(unavailable)?,
            )
        };
        let store = RedisStore {
            connection,
            prefix: config.prefix.clone(),
            scripts: Scripts::load(),
            config_scripts: ConfigScripts::load(),
            config_keys: ConfigKeys::new(&config.prefix),
            urls: config.urls.clone(),
            connect_timeout: config.connect_timeout,
            credit_marker_ttl_s: config.credit_marker_ttl_s,
            keys: RwLock::default(),
        };
        store.ping().await?;
        Ok(store)
    }

    /// Is Redis answering? (Readiness.)
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pong: String = self.cmd(&redis::cmd("PING")).await?;
        debug_assert_eq!(pong, "PONG");
        Ok(())
    }

    /// The account's key names, from the cache (accounts come from the configuration, so the
    /// cache holds one entry per configured account).
    fn keys(&self, account: &str) -> Arc<Keys> {
        if let Some(keys) = self.keys.read().unwrap_or_else(|e| e.into_inner()).get(account) {
            return keys.clone();
        }
        let keys = Arc::new(Keys::new(&self.prefix, account));
        let mut cache = self.keys.write().unwrap_or_else(|e| e.into_inner());
        cache.entry(Arc::from(account)).or_insert(keys).clone()
    }

    /// A call of `script` on an account's three keys, in the order every account script takes
    /// them: balance, reservations, journal.
    fn on_account<'a>(script: &'a Script, k: &'a Keys) -> ScriptInvocation<'a> {
        let mut invocation = script.key(&k.balance);
        invocation.key(&k.reservations).key(&k.journal);
        invocation
    }

    /// [`on_account`](Self::on_account) plus the fourth key of the scripts that deal with swept
    /// reservations (commit and sweep).
    fn on_account_with_swept<'a>(script: &'a Script, k: &'a Keys) -> ScriptInvocation<'a> {
        let mut invocation = Self::on_account(script, k);
        invocation.key(&k.swept);
        invocation
    }

    /// Runs a script on whichever connection this store has.
    async fn script<T: redis::FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        match self.connection.clone() {
            Connection::Single(mut c) => invocation.invoke_async(&mut c).await,
            Connection::Cluster(mut c) => invocation.invoke_async(&mut c).await,
        }
        .map_err(store_error)
    }

    /// Runs a pipeline (its commands on one account's keys, so on one cluster slot) on whichever
    /// connection this store has.
    async fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, StoreError> {
        match self.connection.clone() {
            Connection::Single(mut c) => pipe.query_async(&mut c).await,
            Connection::Cluster(mut c) => pipe.query_async(&mut c).await,
        }
        .map_err(store_error)
    }

    /// Runs a command on whichever connection this store has.
    async fn cmd<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        match self.connection.clone() {
            Connection::Single(mut c) => cmd.query_async(&mut c).await,
            Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
        .map_err(store_error)
    }
}

/// A credit's retry is refused (`Unverifiable`) once its first attempt is older than the
/// marker's TTL less this: clocks of this host and of Redis may differ a little.
const CLOCK_MARGIN: Duration = Duration::from_secs(60);

/// Credit marks are kept in one hash per account and hour (of the node's clock when the credit was
/// sent): one field per fulfilled packet instead of a key with its own expiry per packet (which
/// cost Redis about 6 us of CPU per packet, and more memory).
const CREDIT_MARKS_HOUR_S: u64 = 3_600;

/// A credit's first attempt is sent within this of the `first_sent` its retries name (it is taken
/// just before), so its mark is in the hash of `first_sent`'s hour or of this later.
const FIRST_ATTEMPT_WITHIN: Duration = Duration::from_secs(60);

/// The hash that holds the credit marks of the hour `sent` falls in.
fn credit_marks(k: &Keys, sent: SystemTime) -> String {
    format!("{}:{}", k.credited, millis(sent) / 1000 / CREDIT_MARKS_HOUR_S)
}

/// An amount a script returned (always digits it wrote itself).
fn parse_amount(text: &str, account: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("amount for {account} is not an integer: {text:?}")))
}

/// A balance as Redis formats it; anything else means the data was tampered with.
fn parse_balance(text: &str, account: &str) -> Result<Balance, StoreError> {
    text.parse::<i64>()
        .map(Balance::from)
        .map_err(|_| StoreError::Corrupt(format!("balance of {account} is not an integer: {text:?}")))
}

/// Whether a failed call may have been applied: not when Redis answered with an error (a script
/// is refused as a whole: NOSCRIPT, CLUSTERDOWN, LOADING, ...) or the connection was refused;
/// possibly in every other case (timeouts, connections dropped after the request was written).
fn store_error(e: redis::RedisError) -> StoreError {
    if matches!(e.kind(), redis::ErrorKind::Server(_)) || e.is_connection_refusal() {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Uncertain(e.to_string())
    }
}

/// A script answered a code this binary does not know: the script and the binary are out of
/// step. Nothing is assumed about what it did.
fn unexpected(script: &str, (code, value): Answer) -> StoreError {
    tracing::error!(script, code, value = %value, "a store script answered a code this binary does not know");
    StoreError::Corrupt(format!("script {script} answered {code} {value:?}"))
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Store for RedisStore {
    async fn debit_prepare(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
        expires_at: SystemTime,
    ) -> Result<Balance, DebitError> {
        // The one-packet maximum is checked here too, so no script ever sees an amount that
        // DECRBY cannot take.
        if amount > AMOUNT_MAX {
            return Err(DebitError::Refused(BalanceError::Overflow));
        }
        let k = self.keys(&from.id);
        let min = from.min_balance.map(|m| m.to_string()).unwrap_or_default();
        let mut invocation = Self::on_account(&self.scripts.prepare, &k);
        invocation.arg(packet.to_string()).arg(amount).arg(millis(expires_at)).arg(min);
        match Prepare::read(self.script::<Answer>(&invocation).await?, &from.id)? {
            Prepare::Debited(balance) => Ok(balance),
            Prepare::BelowMinimum(balance) => Err(DebitError::Refused(BalanceError::BelowMinimum {
                balance,
                amount,
                min_balance: from.min_balance.unwrap_or(Balance::MIN),
            })),
            Prepare::OutOfRange => Err(DebitError::Refused(BalanceError::Overflow)),
            Prepare::Unexpected(answer) => Err(unexpected("process_prepare", answer).into()),
        }
    }

    async fn commit_prepare(&self, from: &Account, amount: u64, packet: PacketId) -> Result<(), StoreError> {
        let k = self.keys(&from.id);
        let mut invocation = Self::on_account_with_swept(&self.scripts.fulfill_source, &k);
        invocation.arg(packet.to_string()).arg(amount);
        match Commit::read(self.script::<Answer>(&invocation).await?) {
            Commit::Committed | Commit::Already => Ok(()),
            Commit::ChargedAgain => {
                tracing::warn!(account = %from.id, %packet, "Fulfill recorded after its reservation was swept; charged again");
                Ok(())
            }
            Commit::OutOfRange => Err(StoreError::Overflow(from.id.to_string())),
            Commit::Unexpected(answer) => Err(unexpected("process_fulfill_source", answer)),
        }
    }

    async fn reverse_prepare(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
    ) -> Result<Option<Balance>, StoreError> {
        let k = self.keys(&from.id);
        let mut invocation = Self::on_account(&self.scripts.reject, &k);
        invocation.arg(packet.to_string()).arg(amount);
        match Release::read(self.script::<Answer>(&invocation).await?, &from.id)? {
            Release::Released(balance) => Ok(Some(balance)),
            Release::Nothing => Ok(None),
            Release::OutOfRange => Err(StoreError::Overflow(from.id.to_string())),
            Release::Unexpected(answer) => Err(unexpected("process_reject", answer)),
        }
    }

    async fn credit_fulfill(
        &self,
        to: &Account,
        amount: u64,
        packet: PacketId,
    ) -> Result<Balance, StoreError> {
        if amount > AMOUNT_MAX {
            return Err(StoreError::Overflow(to.id.to_string()));
        }
        let k = self.keys(&to.id);
        let packet = packet.to_string();
        let mut invocation = self.scripts.fulfill_destination.key(&k.balance);
        invocation.key(&k.journal).key(credit_marks(&k, SystemTime::now()));
        invocation.arg(&packet).arg(amount).arg(self.credit_marker_ttl_s);
        match Credit::read(self.script::<Answer>(&invocation).await?, &to.id)? {
            Credit::Credited(balance) => Ok(balance),
            Credit::OutOfRange => Err(StoreError::Overflow(to.id.to_string())),
            Credit::Unexpected(answer) => Err(unexpected("process_fulfill_destination", answer)),
        }
    }

    async fn retry_credit(
        &self,
        to: &Account,
        amount: u64,
        packet: PacketId,
        first_sent: SystemTime,
    ) -> Result<Balance, StoreError> {
        if amount > AMOUNT_MAX {
            return Err(StoreError::Overflow(to.id.to_string()));
        }
        // Past the marker's TTL the marker may be gone: a retry could credit twice.
        let age = SystemTime::now().duration_since(first_sent).unwrap_or_default();
        if age + CLOCK_MARGIN >= Duration::from_secs(self.credit_marker_ttl_s) {
            return Err(StoreError::Unverifiable(format!(
                "credit of packet {packet} to {} first sent {} s ago, its marker lives {} s",
                to.id,
                age.as_secs(),
                self.credit_marker_ttl_s
            )));
        }
        let k = self.keys(&to.id);
        let packet = packet.to_string();
        let mut invocation = self.scripts.fulfill_destination_again.key(&k.balance);
        invocation.key(&k.journal).key(credit_marks(&k, first_sent));
        invocation.key(credit_marks(&k, first_sent + FIRST_ATTEMPT_WITHIN));
        invocation.arg(&packet).arg(amount).arg(self.credit_marker_ttl_s);
        match CreditAgain::read(self.script::<Answer>(&invocation).await?, &to.id)? {
            CreditAgain::Credited(balance) => Ok(balance),
            CreditAgain::OutOfRange => Err(StoreError::Overflow(to.id.to_string())),
            CreditAgain::Unexpected(answer) => Err(unexpected("process_fulfill_destination_again", answer)),
        }
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.ping().await
    }

    async fn sweep_expired(
        &self,
        account: &Account,
        cutoff: SystemTime,
        limit: usize,
        forget_before: SystemTime,
    ) -> Result<Swept, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = Self::on_account_with_swept(&self.scripts.sweep, &k);
        invocation.arg(millis(cutoff)).arg(limit).arg(millis(SystemTime::now())).arg(millis(forget_before));
        let (released, _, stuck) = self.script::<(i64, String, i64)>(&invocation).await?;
        match (usize::try_from(released), usize::try_from(stuck)) {
            (Ok(released), Ok(stuck)) => Ok(Swept { released, stuck }),
            _ => Err(unexpected("sweep_expired", (released, stuck.to_string()))),
        }
    }

    async fn fold_journal(
        &self,
        account: &Account,
        before: SystemTime,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let k = self.keys(&account.id);
        let mut invocation = self.scripts.fold.key(&k.journal);
        invocation.key(&k.checkpoint).arg(millis(before)).arg(limit);
        let folded: i64 = self.script(&invocation).await?;
        usize::try_from(folded).map_err(|_| {
            StoreError::Corrupt(format!("journal of {} holds a malformed entry; not folded", account.id))
        })
    }

    async fn begin_settlement(
        &self,
        account: &Account,
        threshold: Balance,
        settle_to: Balance,
        id: SettlementId,
    ) -> Result<Option<u64>, StoreError> {
        self.start_settlement(account, threshold, settle_to, id).await
    }

    async fn finish_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        end: SettlementEnd,
    ) -> Result<Option<u64>, StoreError> {
        self.end_settlement(account, id, end).await
    }

    async fn claim_settlement(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<Option<SettlementClaim>, StoreError> {
        self.take_settlement(account, id, owner, now, until).await
    }

    async fn set_settlement_reference(
        &self,
        account: &Account,
        id: SettlementId,
        owner: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        self.keep_settlement_reference(account, id, owner, reference).await
    }

    async fn settlement_credited(&self, account: &Account, key: &str) -> Result<Option<u64>, StoreError> {
        self.read_settlement_credited(account, key).await
    }

    async fn pending_settlements(&self, account: &Account) -> Result<Vec<PendingSettlement>, StoreError> {
        self.read_pending_settlements(account).await
    }

    async fn create_payout(
        &self,
        account: &Account,
        new: &NewPayout,
        now: SystemTime,
    ) -> Result<CreatedPayout, StoreError> {
        self.make_payout(account, new, now).await
    }

    async fn payout(&self, account: &Account, id: &str) -> Result<Option<Payout>, StoreError> {
        self.read_payout(account, id).await
    }

    async fn open_payouts(&self, account: &Account, limit: usize) -> Result<Vec<Payout>, StoreError> {
        self.read_open_payouts(account, limit).await
    }

    async fn claim_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        now: SystemTime,
        until: SystemTime,
    ) -> Result<Option<Payout>, StoreError> {
        self.take_payout(account, id, owner, now, until).await
    }

    async fn set_payout_reference(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        reference: &str,
    ) -> Result<Option<String>, StoreError> {
        self.keep_payout_reference(account, id, owner, reference).await
    }

    async fn finish_payout(
        &self,
        account: &Account,
        id: &str,
        owner: &str,
        end: &PayoutEnd,
        now: SystemTime,
    ) -> Result<Option<Payout>, StoreError> {
        self.end_payout(account, id, owner, end, now).await
    }

    async fn act_on_payout(
        &self,
        account: &Account,
        id: &str,
        action: PayoutAction,
        now: SystemTime,
    ) -> Result<Result<Payout, PayoutActionRefused>, StoreError> {
        self.act_payout(account, id, action, now).await
    }

    async fn credit_settlement(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
    ) -> Result<IncomingCredit, StoreError> {
        self.credit_incoming_settlement(account, key, quantity, false).await
    }

    async fn credit_settlement_owing_withdrawal(
        &self,
        account: &Account,
        key: &str,
        quantity: Quantity,
    ) -> Result<IncomingCredit, StoreError> {
        self.credit_incoming_settlement(account, key, quantity, true).await
    }

    async fn withdrawals_owed(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OwedWithdrawal>, StoreError> {
        self.read_withdrawals_owed(account, limit).await
    }

    async fn finish_withdrawal(&self, account: &Account, key: &str) -> Result<bool, StoreError> {
        self.forget_withdrawal(account, key).await
    }

    async fn balance(&self, account_id: &str) -> Result<Balance, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(&self.keys(account_id).balance);
        let value: Option<String> = self.cmd(&cmd).await?;
        value.map(|v| parse_balance(&v, account_id)).unwrap_or(Ok(0))
    }

    async fn create_incoming_payment(
        &self,
        account: &Account,
        new: &NewIncomingPayment,
        now: SystemTime,
    ) -> Result<CreatedIncoming, StoreError> {
        self.create_incoming(account, new, now).await
    }

    async fn incoming_payment(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> Result<Option<IncomingPayment>, StoreError> {
        self.read_incoming(account, id).await
    }

    async fn incoming_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<IncomingPayment>, StoreError> {
        self.list_incoming(account, limit).await
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
        self.receive_packet(account, payment, amount, packet, replay, now).await
    }

    async fn expire_incoming_payments(
        &self,
        account: &Account,
        now: SystemTime,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.expire_incoming(account, now, limit).await
    }

    async fn unhandled_completions(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<IncomingPayment>, StoreError> {
        self.list_unhandled(account, limit).await
    }

    async fn mark_completion_handled(
        &self,
        account: &Account,
        id: &IncomingPaymentId,
    ) -> Result<bool, StoreError> {
        self.handle_completion(account, id).await
    }

    async fn create_outgoing_payment(
        &self,
        account: &Account,
        new: &NewOutgoingPayment,
        now: SystemTime,
    ) -> Result<CreatedOutgoing, StoreError> {
        self.create_outgoing(account, new, now).await
    }

    async fn outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
    ) -> Result<Option<OutgoingPayment>, StoreError> {
        self.read_outgoing(account, id).await
    }

    async fn outgoing_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OutgoingPayment>, StoreError> {
        self.list_outgoing(account, limit).await
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
        self.claim_outgoing(account, id, owner, now, lease, grace).await
    }

    async fn set_outgoing_connection(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        destination: &str,
        shared_secret: &[u8; 32],
    ) -> Result<Option<(String, [u8; 32])>, StoreError> {
        self.connect_outgoing(account, id, owner, destination, shared_secret).await
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
        self.reserve_outgoing(account, id, owner, packet, amount, min_delivered, expires_at).await
    }

    async fn record_outgoing_packet(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        packet: u64,
        outcome: PacketOutcome,
    ) -> Result<bool, StoreError> {
        self.record_outgoing(account, id, packet, outcome).await
    }

    async fn finish_outgoing_payment(
        &self,
        account: &Account,
        id: &OutgoingPaymentId,
        owner: &str,
        state: OutgoingState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.finish_outgoing(account, id, owner, state, reason).await
    }

    async fn unfinished_outgoing_payments(
        &self,
        account: &Account,
        limit: usize,
    ) -> Result<Vec<OutgoingPayment>, StoreError> {
        self.list_unfinished(account, limit).await
    }
}
