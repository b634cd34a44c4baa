//! The packet's path through the node, top to bottom in [`Node::forward`]. The node's shared
//! state ([`Node`]) is in [`crate::node`]; this module is the packet path alone.
//!
//! Ordering rules:
//! - every check that can refuse a packet runs before the source is debited, so a refusal never
//!   needs a reversal;
//! - once the debit succeeded, every path out of [`Node::send_and_settle`] either commits it and
//!   credits the destination (a valid Fulfill, both written before the Fulfill is relayed) or
//!   releases it (anything else), exactly once; a release the store cannot write is left to the
//!   sweeper, which releases the reservation after the packet's expiry;
//! - the Fulfill's preimage is checked before anything is credited;
//! - a packet for a local account is answered inside the node ([`Node::receive_locally`]): its
//!   receiver credits the account in the same atomic step that checks the account's incoming
//!   payment, before it fulfils, so this path then only commits or releases the source's debit.
//!
//! Store failures after a Fulfill: both writes are retried for as long as the Fulfill can still
//! be relayed in time (or until the node aborts on shutdown), then handed to [`crate::pending`],
//! which records them durably before the Fulfill is relayed and retries them in the background. Retries
//! never apply a write twice: the commit is idempotent (a reservation the sweeper released
//! meanwhile is charged again, once), and a credit is retried with [`Store::retry_credit`], which
//! credits only if the earlier attempt did not.

use crate::account::{constant_time_eq, Account, Relation};
use crate::backoff::Backoff;
use crate::balance::AMOUNT_MAX;
use crate::http::client::SendError;
use crate::ildcp;
use crate::metrics::{MoneyError, Outcome};
use crate::node::Node;
use crate::packet::{is_under, Prepare, Response};
use crate::packet::{ErrorCode, Fulfill, Reject, DATA_BYTES_MAX};
use crate::pending::{self, PendingWrite, WriteKind};
use crate::rates::{Asset, ConvertError};
use crate::reject::Refusal;
use crate::settlement::engine::EngineError;
use crate::settlement::incoming;
use crate::shutdown::Phase;
use crate::store::{DebitError, PacketId, Store, StoreError};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{debug, error, warn, Instrument};

/// A Prepare after routing and conversion, ready to leave.
struct Outbound {
    to: Arc<Account>,
    prepare: Prepare,
    amount_in: u64,
    amount_out: u64,
    deadline: tokio::time::Instant,
    expires_at: SystemTime,
    /// The last moment to relay the outcome upstream: half our margin before the incoming expiry.
    relay_by: tokio::time::Instant,
}

impl<S: Store> Node<S> {
    /// Handles one Prepare from an authenticated account; returns the Fulfill or Reject bytes.
    pub async fn forward(&self, from: &Account, prepare: Prepare) -> Bytes {
        // In flight from here until the answer is built, or until this future is dropped.
        let in_flight = self.metrics.packet_started();
        let span = tracing::debug_span!(
            "packet",
            from = %from.id,
            amount = prepare.amount(),
            to = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        async move {
            let response = match self.process(from, prepare).await {
                Ok(response) => response,
                Err(refusal) => {
                    debug!(%refusal, "refused");
                    Response::Reject(refusal.to_reject(&self.address))
                }
            };
            let (outcome, code) = match &response {
                Response::Fulfill(_) => (Outcome::Fulfilled, *b"FUL"),
                Response::Reject(r) => (Outcome::Rejected(r.code().into()), r.code().into()),
            };
            tracing::Span::current().record("code", std::str::from_utf8(&code).unwrap_or("???"));
            in_flight.finished(&from.id, outcome);
            response.as_bytes().clone()
        }
        .instrument(span)
        .await
    }

    /// The packet's path. Each step either passes the packet on or refuses it.
    async fn process(&self, from: &Account, prepare: Prepare) -> Result<Response, Refusal> {
        let now = SystemTime::now();
        // 1. Refuse what is already dead or too big (STREAM sizes packets from the F08 data).
        if prepare.expires_at() <= now {
            return Err(Refusal::Expired);
        }
        let maximum = from.max_packet_amount.min(AMOUNT_MAX);
        if prepare.amount() > maximum {
            return Err(Refusal::AmountTooLarge { received: prepare.amount(), maximum });
        }
        // 2. Peer protocols are answered here, never routed. They move no money: a Fulfill for a
        //    non-zero amount would tell the sender it paid us what no balance recorded.
        if prepare.destination().starts_with("peer.") {
            if prepare.amount() != 0 {
                return Err(Refusal::BadRequest("peer protocol packets must carry amount 0"));
            }
            return self.answer_peer_protocol(from, &prepare).await;
        }
        // 3-5. Pick the next hop, convert the amount, shorten the expiry. No state changes yet.
        let outbound = self.prepare_outbound(from, prepare, now)?;
        tracing::Span::current().record("to", &*outbound.to.id);
        // 6. Reserve: debit the source within its credit limit, under this packet's id.
        let packet = PacketId::next();
        self.store.debit_prepare(from, outbound.amount_in, packet, outbound.expires_at).await.map_err(
            |e| match e {
                DebitError::Refused(_) => Refusal::InsufficientLiquidity,
                DebitError::Store(e) => {
                    error!(error = %e, "store failed on prepare; packet refused with T00");
                    Refusal::Internal
                }
            },
        )?;
        // 7. Send, then commit and credit, or reverse, according to the outcome.
        self.send_and_settle(from, outbound, packet).await
    }

    /// ILDCP for children; `peer.settle` for accounts with a settlement engine; any other
    /// `peer.*` destination is not served here. No balance changes on this path.
    async fn answer_peer_protocol(&self, from: &Account, prepare: &Prepare) -> Result<Response, Refusal> {
        match (prepare.destination(), from.relation, &from.ilp_address) {
            (ildcp::DESTINATION, Relation::Child, Some(address)) => {
                Ok(Response::Fulfill(ildcp::response(address, &from.asset_code, from.asset_scale)))
            }
            (ildcp::DESTINATION, _, _) => {
                Err(Refusal::Unreachable("peer.config is answered for child accounts only"))
            }
            (incoming::PEER_SETTLE, _, _) => match &from.settlement_engine_url {
                Some(engine) => Ok(self.engine_message(engine, from, prepare).await),
                None => Err(Refusal::Unreachable(
                    "peer.settle is answered for accounts with a settlement engine only",
                )),
            },
            _ => Err(Refusal::Unreachable("peer protocol not served by this node")),
        }
    }

    /// Hands the peer engine's message to the account's engine (RFC 0038): its answer goes back
    /// in a Fulfill; a refusal in a Reject from `peer.settle` carrying the engine's answer, F00
    /// when the engine refused the message, T00 when it could not be asked.
    async fn engine_message(&self, engine: &str, from: &Account, prepare: &Prepare) -> Response {
        let message = Bytes::copy_from_slice(prepare.data());
        let reject = |code, text: &str, data: &[u8]| {
            Response::Reject(Reject::build(code, incoming::peer_settle(), text, data))
        };
        match self.engines.send_message(engine, &from.id, message).await {
            Ok(answer) if answer.len() <= DATA_BYTES_MAX => {
                Response::Fulfill(Fulfill::build(&incoming::PEER_SETTLE_FULFILLMENT, &answer))
            }
            Ok(_) => reject(ErrorCode::T00_INTERNAL_ERROR, "settlement engine's answer is too large", &[]),
            Err(EngineError::Definitive { status, body }) => {
                debug!(account = %from.id, status, "settlement engine refused a peer's message");
                reject(ErrorCode::F00_BAD_REQUEST, "settlement engine refused the message", body.as_bytes())
            }
            Err(e) => {
                warn!(error = %e, account = %from.id, "settlement engine unreachable for a peer's message");
                reject(ErrorCode::T00_INTERNAL_ERROR, "settlement engine unavailable", &[])
            }
        }
    }

    /// Route, convert and re-time the packet for the next hop.
    fn prepare_outbound(
        &self,
        from: &Account,
        mut prepare: Prepare,
        now: SystemTime,
    ) -> Result<Outbound, Refusal> {
        let to = self.route(from, prepare.destination())?;
        let amount_in = prepare.amount();
        let amount_out =
            self.rates.load().convert(amount_in, asset(from), asset(&to)).map_err(|e| match e {
                ConvertError::NoRate(which) => Refusal::NoRate(which),
                ConvertError::Overflow { max_source } => {
                    Refusal::AmountTooLarge { received: amount_in, maximum: max_source }
                }
                ConvertError::RoundsToZero => Refusal::RoundsToZero,
            })?;
        let incoming_expiry = prepare.expires_at();
        let expires_at = self.outgoing_expiry(incoming_expiry, now, &to)?;
        prepare.set_amount_and_expiry(amount_out, expires_at);
        let left = expires_at.duration_since(now).unwrap_or_default();
        let relay_left = (incoming_expiry - self.expiry.margin / 2).duration_since(now).unwrap_or_default();
        let start = tokio::time::Instant::now();
        Ok(Outbound {
            to,
            prepare,
            amount_in,
            amount_out,
            deadline: start + left,
            expires_at,
            relay_by: start + relay_left.max(left),
        })
    }

    /// Longest-prefix next hop, never back to the sender, never out of our own subtree to the
    /// parent (that would loop), and only to accounts we can actually send to.
    fn route(&self, from: &Account, destination: &str) -> Result<Arc<Account>, Refusal> {
        let no_route = || Refusal::NoRoute(destination.to_string());
        let accounts = self.accounts.load();
        let table = self.router.table();
        let next = table.lookup(destination).ok_or_else(no_route)?;
        let to = accounts.get(next).ok_or_else(no_route)?;
        if to.id == from.id {
            return Err(Refusal::Unreachable("route leads back to the sending account"));
        }
        if to.relation == Relation::Parent && is_under(destination, self.address.as_str()) {
            return Err(no_route());
        }
        if to.outgoing.is_none() && to.relation != Relation::Local {
            return Err(Refusal::Unreachable("next hop has no outgoing URL"));
        }
        Ok(to.clone())
    }

    /// The incoming expiry minus our margin, capped by the maximum hold time, the next hop's own
    /// when it has one (a Fulfill that came later would not be booked there, or not relayed here).
    fn outgoing_expiry(
        &self,
        incoming: SystemTime,
        now: SystemTime,
        to: &Account,
    ) -> Result<SystemTime, Refusal> {
        let shortened = incoming.checked_sub(self.expiry.margin).ok_or(Refusal::InsufficientTimeout)?;
        let hold = to.hold_time_max.map_or(self.expiry.hold_time_max, |h| h.min(self.expiry.hold_time_max));
        let capped = shortened.min(now + hold);
        match capped.duration_since(now) {
            Ok(left) if left >= self.expiry.outgoing_window_min => Ok(capped),
            _ => Err(Refusal::InsufficientTimeout),
        }
    }

    /// Sends the packet and settles its outcome: credit on a valid Fulfill, reverse otherwise.
    async fn send_and_settle(
        &self,
        from: &Account,
        out: Outbound,
        packet: PacketId,
    ) -> Result<Response, Refusal> {
        if out.to.relation == Relation::Local {
            return Ok(self.deliver_locally(from, out, packet).await);
        }
        let Outbound { to, prepare, amount_in, amount_out, deadline, expires_at, relay_by } = out;
        let outgoing = to
            .outgoing
            .as_ref()
            .expect("route() only returns local accounts and accounts with an outgoing URL");
        let condition = *prepare.execution_condition();
        let sent = tokio::select! {
            sent = self.client.send(outgoing, prepare.into_bytes(), deadline) => sent,
            _ = self.shutdown.reached(Phase::Aborting) => Err(SendError::Transport("node shutting down".into())),
        };
        match sent {
            Ok(Response::Fulfill(fulfill)) if fulfills(&condition, fulfill.fulfillment()) => {
                // Recorded before the Fulfill is relayed upstream. The two accounts may live in
                // different store shards, so the two writes go out together, not one after the
                // other.
                let first_sent = SystemTime::now();
                let (committed, credited) = tokio::join!(
                    self.commit(from, amount_in, packet, relay_by),
                    self.credit(&to, amount_out, packet, first_sent, relay_by),
                );
                // The money moved downstream whatever our store says: relay the Fulfill so the
                // sender pays us; writes still unapplied are made durable first, then go on in
                // the background.
                let mut owed = Vec::new();
                if let Err(e) = committed {
                    owed.extend(self.unapplied(WriteKind::Commit, from, amount_in, packet, first_sent, e));
                }
                match credited {
                    Ok(balance) => self.settlement.after_credit(&to, balance),
                    Err(e) => {
                        owed.extend(self.unapplied(WriteKind::Credit, &to, amount_out, packet, first_sent, e))
                    }
                }
                if let Some((_, cause)) = owed.last() {
                    let cause = cause.clone();
                    self.pending.hand_over(owed.into_iter().map(|(w, _)| w).collect(), &cause).await;
                }
                Ok(Response::Fulfill(fulfill))
            }
            Ok(Response::Fulfill(_)) => {
                warn!(to = %to.id, "fulfillment does not match the condition");
                self.reverse(from, amount_in, packet).await;
                Err(Refusal::WrongCondition)
            }
            Ok(Response::Reject(reject)) => {
                self.reverse(from, amount_in, packet).await;
                Ok(Response::Reject(reject))
            }
            Err(e) => {
                self.reverse(from, amount_in, packet).await;
                self.warn_send_failed(&to, &e);
                Err(self.send_refusal(e, expires_at))
            }
        }
    }

    /// A packet for a local account is answered by the node's own STREAM receiver, which
    /// credits the account itself, in the same atomic step that checks its incoming payment,
    /// before it fulfils (so a packet past a payment's target is refused before anything moves).
    /// What is left here is the source's side: committed on the Fulfill (its retries and owed
    /// writes as for a relayed Fulfill), released on anything else.
    async fn deliver_locally(&self, from: &Account, out: Outbound, packet: PacketId) -> Response {
        let Outbound { to, prepare, amount_in, amount_out, relay_by, .. } = out;
        let answer = self.receive_locally(&to, &prepare, amount_out, packet, relay_by).await;
        match &answer {
            Response::Fulfill(_) => {
                let first_sent = SystemTime::now();
                if let Err(e) = self.commit(from, amount_in, packet, relay_by).await {
                    if let Some((write, cause)) =
                        self.unapplied(WriteKind::Commit, from, amount_in, packet, first_sent, e)
                    {
                        self.pending.hand_over(vec![write], &cause).await;
                    }
                }
            }
            Response::Reject(_) => self.reverse(from, amount_in, packet).await,
        }
        answer
    }

    /// Commits the source's debit (idempotent), retrying outages until `until`.
    async fn commit(
        &self,
        from: &Account,
        amount: u64,
        packet: PacketId,
        until: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        // The first attempt alone (bounded by the store's own response timeout), so that the
        // packet path pays for the race with shutdown only when a write has to be retried.
        match self.store.commit_prepare(from, amount, packet).await {
            Err(e) if pending::retryable(&e) && tokio::time::Instant::now() < until => {
                self.unless_aborted(retry_until(until, pending::retryable, || {
                    self.store.commit_prepare(from, amount, packet)
                }))
                .await
            }
            first => first,
        }
    }

    /// Runs a Fulfill's store write retries until the node aborts: then they stop (the write's
    /// outcome unknown) and it is handed over with the others, so the packet task ends in time
    /// for the shutdown instead of being dropped while it still owes the write.
    async fn unless_aborted<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::select! {
            outcome = write => outcome,
            _ = self.shutdown.reached(Phase::Aborting) => {
                Err(StoreError::Uncertain("node shutting down; the write is handed over".into()))
            }
        }
    }

    /// Credits the destination, retrying outages until `until`; every retry credits only if no
    /// earlier attempt (the first sent at `first_sent`) did.
    async fn credit(
        &self,
        to: &Account,
        amount: u64,
        packet: PacketId,
        first_sent: SystemTime,
        until: tokio::time::Instant,
    ) -> Result<crate::balance::Balance, StoreError> {
        match self.store.credit_fulfill(to, amount, packet).await {
            Err(e) if pending::retryable(&e) && tokio::time::Instant::now() < until => {
                debug!(error = %e, "credit after a Fulfill failed; retrying");
                self.unless_aborted(retry_until(until, pending::retryable, || {
                    self.store.retry_credit(to, amount, packet, first_sent)
                }))
                .await
            }
            first => first,
        }
    }

    /// A write of a fulfilled packet that failed: to be handed over to [`crate::pending`] if it
    /// may still succeed, else logged for reconciliation.
    fn unapplied(
        &self,
        kind: WriteKind,
        account: &Account,
        amount: u64,
        packet: PacketId,
        first_sent: SystemTime,
        e: StoreError,
    ) -> Option<(PendingWrite, StoreError)> {
        if pending::retryable(&e) {
            Some((PendingWrite { kind, account: account.clone(), amount, packet, first_sent }, e))
        } else {
            self.metrics.money_error(match e {
                StoreError::Corrupt(_) => MoneyError::Corrupt,
                _ => MoneyError::FulfillWriteRefused,
            });
            error!(error = %e, account = %account.id, %packet, amount, ?kind, "fulfilled packet's write cannot be applied; reconcile this packet");
            None
        }
    }

    /// A next hop that is down, answers an HTTP error or garbles its answer is the operator's to
    /// fix: warned about, once per account per interval. A packet that expired on its way is the
    /// sender's business (its timing), and the node's own shutdown is expected: debug only.
    fn warn_send_failed(&self, to: &Account, e: &SendError) {
        if matches!(e, SendError::TimedOut) || self.shutdown.phase() == Phase::Aborting {
            debug!(error = %e, to = %to.id, "send failed");
            return;
        }
        if let Some(admitted) = self.next_hop_warnings.admit(&to.id, std::time::Instant::now()) {
            let url = to.outgoing.as_ref().map(|o| o.url.to_string()).unwrap_or_default();
            warn!(
                error = %e,
                to = %to.id,
                %url,
                suppressed = admitted.suppressed,
                "next hop failed; its packets are rejected with T01 (one line per account per {} ms, \
                 `suppressed` counts the failures not logged since the last)",
                crate::log_limit::NEXT_HOP_WARNING_INTERVAL_MS
            );
        } else {
            debug!(error = %e, to = %to.id, "send failed");
        }
    }

    /// A failed send is R00 once the packet's time is up, F09 for a garbled answer, else T01.
    fn send_refusal(&self, e: SendError, expires_at: SystemTime) -> Refusal {
        if self.shutdown.phase() == Phase::Aborting {
            return Refusal::ShuttingDown;
        }
        match e {
            SendError::TimedOut => Refusal::PeerTimedOut,
            _ if SystemTime::now() >= expires_at => Refusal::PeerTimedOut,
            SendError::Invalid(e) => Refusal::InvalidPeerResponse(e.to_string()),
            SendError::Body => Refusal::InvalidPeerResponse("unreadable body".into()),
            e => Refusal::PeerUnreachable(e.to_string()),
        }
    }

    /// Undoes the prepare debit. A failure here is a store outage mid-packet: logged for
    /// reconciliation, since the packet itself is already being refused.
    async fn reverse(&self, from: &Account, amount: u64, packet: PacketId) {
        match self.store.reverse_prepare(from, amount, packet).await {
            Ok(_) => {}
            Err(e @ StoreError::Overflow(_)) => {
                self.metrics.money_error(MoneyError::ReleaseOverflow);
                error!(error = %e, from = %from.id, %packet, amount, "a prepare debit cannot be reversed: the balance would pass the int64 maximum; it stays reserved and the sweeper tries again");
            }
            Err(e) => {
                if let StoreError::Corrupt(_) = e {
                    self.metrics.money_error(MoneyError::Corrupt);
                }
                error!(error = %e, from = %from.id, %packet, "could not reverse a prepare debit")
            }
        }
    }
}

/// Waits between two attempts of a store write after a Fulfill: doubling from the first, capped.
const RETRY_FIRST: Duration = Duration::from_millis(10);
const RETRY_CAP: Duration = Duration::from_millis(250);

/// Runs `attempt` until it succeeds, fails in a way `retryable` refuses, or the next try would
/// start after `until`; returns the last outcome.
pub(crate) async fn retry_until<T, F>(
    until: tokio::time::Instant,
    retryable: impl Fn(&StoreError) -> bool,
    attempt: impl Fn() -> F,
) -> Result<T, StoreError>
where
    F: std::future::Future<Output = Result<T, StoreError>>,
{
    // Exact waits: the loop must not overshoot `until`, the last moment to relay the Fulfill.
    let mut backoff = Backoff::exact(RETRY_FIRST, RETRY_CAP);
    loop {
        match attempt().await {
            Err(e) if retryable(&e) && tokio::time::Instant::now() + backoff.peek() < until => {
                debug!(error = %e, "store write after a Fulfill failed; retrying");
                tokio::time::sleep(backoff.next_wait()).await;
            }
            outcome => return outcome,
        }
    }
}

fn asset(account: &Account) -> Asset<'_> {
    Asset { code: &account.asset_code, scale: account.asset_scale }
}

/// SHA-256(fulfillment) == condition, compared in constant time.
fn fulfills(condition: &[u8; 32], fulfillment: &[u8; 32]) -> bool {
    let digest = ring::digest::digest(&ring::digest::SHA256, fulfillment);
    constant_time_eq(digest.as_ref(), condition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn failing(
        times: usize,
        error: StoreError,
    ) -> (Arc<AtomicUsize>, impl Fn() -> std::future::Ready<Result<u8, StoreError>>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let attempt = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if n < times { Err(error.clone()) } else { Ok(7) })
        };
        (calls, attempt)
    }

    fn in_ms(ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_a_retryable_failure_until_it_succeeds() {
        let (calls, attempt) = failing(4, StoreError::Uncertain("timeout".into()));
        assert_eq!(retry_until(in_ms(10_000), |_| true, attempt).await, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_what_the_rule_refuses() {
        let uncertain = StoreError::Uncertain("timeout".into());
        let (calls, attempt) = failing(1, uncertain.clone());
        let only_unavailable = |e: &StoreError| matches!(e, StoreError::Unavailable(_));
        assert_eq!(retry_until(in_ms(10_000), only_unavailable, attempt).await, Err(uncertain));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "an uncertain credit is not sent twice");
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_deadline_with_the_last_error() {
        let down = StoreError::Unavailable("refused".into());
        let (calls, attempt) = failing(usize::MAX, down.clone());
        let started = tokio::time::Instant::now();
        assert_eq!(retry_until(in_ms(1_000), |_| true, attempt).await, Err(down));
        let (n, waited) = (calls.load(Ordering::SeqCst), started.elapsed());
        // 10 + 20 + 40 + 80 + 160 + 250 + 250 = 810 ms; the next wait would pass the deadline.
        assert_eq!((n, waited), (8, Duration::from_millis(810)));
    }
}
