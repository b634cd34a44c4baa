//! Payments the node sends itself, from a local account, over STREAM: each one a record in the
//! store (created through the admin API with a client-chosen id), sent by whichever instance
//! holds its lease, through the node's own packet path (so the account is debited as packets
//! are fulfilled, never past its `min_balance`, and every hop's rules apply).
//!
//! **Never paid twice.** The same id is one payment (a second create finds the first). Every
//! money packet is reserved on the payment before it leaves ([`Store::reserve_outgoing_packet`]),
//! by the lease holder only, within the payment's amount; its outcome is recorded once. A packet
//! whose outcome was never recorded (its instance died) counts as sent once it expired (*in
//! doubt*): a resumed payment sends only what is left after it, so it may pay less, never more,
//! and shows how much is in doubt. Test packets (the rate probe, which nobody can fulfil) move
//! no money and are not reserved.
//!
//! **Resumed.** A worker on every instance scans the local accounts' unfinished payments (at
//! start-up, then every [`SCAN_INTERVAL`], and at once when one is created) and sends those
//! whose lease it can take; a lease held by a running instance is renewed while it sends, so
//! two instances never send the same payment at once.

use crate::account::{Account, Relation};
use crate::node::Node;
use crate::packet::{ErrorCode, IlpAddress, Prepare, Reject, Response};
use crate::shutdown::Phase;
use crate::store::{
    AmountKind, OutgoingPayment, OutgoingPaymentId, OutgoingState, PacketOutcome, Reserved, Store, StoreError,
};
use crate::stream::sender::{self, Amount, AssetDetails, Outcome, Payment, Progress, Rules, Slippage};
use crate::stream::{SharedSecret, StreamKeys, StreamPacket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// How long a lease holds without renewal: an instance that died gives its payments up after it.
pub const LEASE: Duration = Duration::from_secs(30);
/// A sending instance renews its lease this often (well within [`LEASE`]).
pub const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// A reservation this long past its packet's expiry, never recorded, is in doubt.
pub const DOUBT_GRACE: Duration = Duration::from_secs(5);
/// Unfinished payments are looked for this often (and at once when one is created).
pub const SCAN_INTERVAL: Duration = Duration::from_secs(5);
/// Payments resumed per account per scan.
pub const SCAN_BATCH_MAX: usize = 100;
/// An SPSP query for a payment's receiver: its whole time, and its answer's size.
pub const SPSP_TIMEOUT: Duration = Duration::from_secs(10);
pub const SPSP_BODY_BYTES_MAX: usize = 64 * 1024;
/// Tries of a packet's outcome record when the store fails (then it is left in doubt).
const RECORD_ATTEMPTS: usize = 5;

/// Runs until the node starts draining: resumes every unfinished payment it can take.
pub async fn run<S: Store>(node: Arc<Node<S>>) {
    loop {
        scan_once(&node).await;
        tokio::select! {
            _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            _ = node.sending.wake.notified() => {}
            _ = node.shutdown.reached(Phase::Draining) => return,
        }
    }
}

/// Starts a task for every unfinished payment of a local account not being sent here already.
pub async fn scan_once<S: Store>(node: &Arc<Node<S>>) {
    let accounts = node.accounts.load();
    for account in accounts.iter().filter(|a| a.relation == Relation::Local) {
        let unfinished = match node.store.unfinished_outgoing_payments(account, SCAN_BATCH_MAX).await {
            Ok(unfinished) => unfinished,
            Err(e) => {
                warn!(error = %e, account = %account.id, "unfinished outgoing payments not read this scan");
                continue;
            }
        };
        for payment in unfinished {
            let key = (account.id.to_string(), payment.id.clone());
            if !node.sending.start(key.clone()) {
                continue;
            }
            let (node, account) = (node.clone(), account.clone());
            tokio::spawn(async move {
                send_payment(&node, &account, &payment.id).await;
                node.sending.done(&key);
            });
        }
    }
}

/// Sends one payment to its end, if this instance can take its lease.
async fn send_payment<S: Store>(node: &Node<S>, account: &Account, id: &OutgoingPaymentId) {
    let owner = node.sending.owner.as_str();
    let claimed =
        node.store.claim_outgoing_payment(account, id, owner, SystemTime::now(), LEASE, DOUBT_GRACE).await;
    let payment = match claimed {
        Ok(Some(payment)) => payment,
        Ok(None) => return,
        Err(e) => {
            return warn!(error = %e, payment = %id, "outgoing payment not claimed; retried at the next scan")
        }
    };
    let renewing = async {
        loop {
            tokio::time::sleep(LEASE_RENEWAL).await;
            let now = SystemTime::now();
            match node.store.claim_outgoing_payment(account, id, owner, now, LEASE, DOUBT_GRACE).await {
                Ok(Some(_)) => {}
                // Lost: every reservation from here on is refused, which stops the sender.
                Ok(None) => return warn!(payment = %id, "outgoing payment's lease lost"),
                Err(e) => warn!(error = %e, payment = %id, "outgoing payment's lease not renewed this time"),
            }
        }
    };
    let sending = attempt(node, account, &payment);
    let ended = tokio::select! {
        ended = sending => ended,
        _ = renewing => return,
    };
    let (state, reason) = match ended {
        Ok(outcome) if outcome.is_completed() => (OutgoingState::Completed, "completed".to_string()),
        Ok(outcome) => (OutgoingState::Failed, format!("{:?}", outcome.stop)),
        Err(reason) => (OutgoingState::Failed, reason),
    };
    match node.store.finish_outgoing_payment(account, id, owner, state, &reason).await {
        Ok(true) => {
            node.metrics.outgoing_payment_ended(state == OutgoingState::Completed);
            info!(account = %account.id, payment = %id, ?state, %reason, "outgoing payment ended");
            node.sending.ended.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(false) => {}
        Err(e) => warn!(error = %e, payment = %id, "outgoing payment's end not recorded; it is resumed"),
    }
}

/// Resolves the connection (once: a resumed payment pays the one kept), then pays what is left.
/// `Err` with the reason when it cannot start.
async fn attempt<S: Store>(
    node: &Node<S>,
    account: &Account,
    payment: &OutgoingPayment,
) -> Result<Outcome, String> {
    let owner = node.sending.owner.as_str();
    let connection = match (&payment.destination, &payment.shared_secret) {
        (Some(destination), Some(secret)) => Some((destination.clone(), *secret)),
        // Created with STREAM credentials (its receiver is their address): the admin API keeps
        // them right after creating it; a scan may have come in between.
        _ if IlpAddress::parse(&payment.receiver).is_ok() => Some(
            credentials_kept(node, account, &payment.id)
                .await
                .ok_or("its STREAM credentials were never kept")?,
        ),
        _ => None,
    };
    let (destination, secret) = match connection {
        Some(connection) => connection,
        None => {
            let target = crate::spsp::resolve(
                node.client.connector(),
                &payment.receiver,
                SPSP_TIMEOUT,
                SPSP_BODY_BYTES_MAX,
            )
            .await
            .map_err(|e| format!("receiver {:?} could not be resolved: {e}", payment.receiver))?;
            let destination = target.destination.to_string();
            let kept = node
                .store
                .set_outgoing_connection(
                    account,
                    &payment.id,
                    owner,
                    &destination,
                    target.shared_secret.as_bytes(),
                )
                .await
                .map_err(|e| format!("store: {e}"))?;
            kept.ok_or_else(|| "the lease was lost before sending".to_string())?
        }
    };
    let destination =
        IlpAddress::parse(&destination).map_err(|e| format!("kept destination is invalid: {e}"))?;
    let slippage = Slippage::parse(&payment.slippage).map_err(|e| format!("slippage: {e}"))?;
    if payment.kind == AmountKind::Delivered && payment.in_doubt > 0 {
        // What an unanswered packet delivered is unknown: resuming could deliver more than asked.
        return Err(format!(
            "{} source units are in doubt; not resumed (reconcile with the receiver)",
            payment.in_doubt
        ));
    }
    let amount = match payment.kind {
        AmountKind::Source => Amount::Source(payment.amount),
        AmountKind::Delivered => Amount::Delivered(payment.amount),
    };
    let spec = Payment {
        destination,
        shared_secret: SharedSecret::from_bytes(secret),
        source_asset: AssetDetails { code: account.asset_code.to_string(), scale: account.asset_scale },
        // Empty, as @interledger/pay sends it: the local account's own address reaches no
        // receiver (packets to it are F02), and a receiver that learns it tries to probe back,
        // fails, and closes the connection in the middle of the payment (ilp-protocol-stream).
        source_address: None,
        amount,
    };
    let left = payment.deadline.duration_since(SystemTime::now()).unwrap_or_default();
    let mut rules = Rules::new(tokio::time::Instant::now() + left);
    rules.slippage = slippage;
    // A Mojaloop transfer carries out its quote: the rate its probe found, no probe again.
    rules.probed = payment.probed.map(|p| (p.sent, p.delivered));
    // Above every sequence an earlier run used on this connection: a run sends far fewer than
    // one packet per microsecond, so its sequences stay below the microseconds elapsed when the
    // next run starts.
    let elapsed = SystemTime::now().duration_since(payment.created_at).unwrap_or_default();
    rules.sequence_after = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX / 2);
    // In doubt counts as sent: never more than the amount leaves the account.
    let progress =
        Progress { sent: payment.sent.saturating_add(payment.in_doubt), delivered: payment.delivered };
    let transport = NodeTransport {
        node,
        account,
        payment: &payment.id,
        keys: spec.shared_secret.keys(),
        next_packet: AtomicU64::new(payment.last_packet.map_or(0, |p| p + 1)),
    };
    sender::pay(&transport, &spec, &rules, progress, |_| async {}).await.map_err(|e| e.to_string())
}

/// The connection the admin API keeps for a payment created with STREAM credentials, waited for
/// a moment.
async fn credentials_kept<S: Store>(
    node: &Node<S>,
    account: &Account,
    id: &OutgoingPaymentId,
) -> Option<(String, [u8; 32])> {
    for _ in 0..20 {
        if let Ok(Some(payment)) = node.store.outgoing_payment(account, id).await {
            if let (Some(destination), Some(secret)) = (payment.destination, payment.shared_secret) {
                return Some((destination, secret));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The sender's way out: the node's own packet path, from the local account, with every money
/// packet reserved on the payment before it leaves and its outcome recorded after.
struct NodeTransport<'a, S> {
    node: &'a Node<S>,
    account: &'a Account,
    payment: &'a OutgoingPaymentId,
    keys: StreamKeys,
    /// The next packet key: above every key an earlier holder of the lease used.
    next_packet: AtomicU64,
}

impl<S: Store> sender::Transport for NodeTransport<'_, S> {
    async fn send(&self, prepare: Prepare) -> Response {
        let reserved = match self.money_packet(&prepare) {
            Some(min_delivered) => match self.reserve(&prepare, min_delivered).await {
                Ok(key) => Some(key),
                Err(refusal) => return refusal,
            },
            None => None,
        };
        let amount = prepare.amount();
        let answer = forward_from(self.node, self.account, prepare).await;
        if let Some(key) = reserved {
            let outcome = match &answer {
                Response::Fulfill(fulfill) => {
                    self.node.metrics.stream_sent(&self.account.id, amount);
                    PacketOutcome::Fulfilled {
                        delivered: delivered_by(&self.keys, fulfill.data()).unwrap_or(0),
                    }
                }
                Response::Reject(reject) => PacketOutcome::Rejected { code: reject.code().into() },
            };
            self.record(key, outcome, amount).await;
        }
        answer
    }
}

impl<S: Store> NodeTransport<'_, S> {
    /// The least the receiver must accept, when the packet can move money: its condition is
    /// the connection's fulfillment of its data (test packets carry random conditions).
    fn money_packet(&self, prepare: &Prepare) -> Option<u64> {
        if self.keys.condition(prepare.data()) != *prepare.execution_condition() {
            return None;
        }
        let plaintext = self.keys.decrypt(prepare.data()).ok()?;
        Some(StreamPacket::decode(&plaintext).ok()?.prepare_amount)
    }

    /// Reserves the packet under the next key; a refusal is the Reject that stops the sender.
    async fn reserve(&self, prepare: &Prepare, min_delivered: u64) -> Result<u64, Response> {
        let key = self.next_packet.fetch_add(1, Ordering::SeqCst);
        let (account, id, owner) = (self.account, self.payment, self.node.sending.owner.as_str());
        let reserved = self
            .node
            .store
            .reserve_outgoing_packet(
                account,
                id,
                owner,
                key,
                prepare.amount(),
                min_delivered,
                prepare.expires_at(),
            )
            .await;
        match reserved {
            Ok(Reserved::Reserved) => Ok(key),
            Ok(refused) => {
                Err(self
                    .refuse(ErrorCode::F00_BAD_REQUEST, &format!("payment refuses the packet: {refused:?}")))
            }
            // Not sent: the sender retries a temporary failure.
            Err(StoreError::Unavailable(_)) => {
                Err(self.refuse(ErrorCode::T00_INTERNAL_ERROR, "store unavailable"))
            }
            Err(e) => Err(self.refuse(ErrorCode::F00_BAD_REQUEST, &format!("packet not reserved: {e}"))),
        }
    }

    /// Records the outcome; if the store keeps failing, the reservation becomes in doubt.
    async fn record(&self, key: u64, outcome: PacketOutcome, amount: u64) {
        for _ in 0..RECORD_ATTEMPTS {
            match self.node.store.record_outgoing_packet(self.account, self.payment, key, outcome).await {
                Ok(_) => return,
                Err(e) => {
                    warn!(error = %e, payment = %self.payment, key, "packet outcome not recorded; retrying")
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        warn!(payment = %self.payment, key, amount, ?outcome, "packet outcome not recorded: it is in doubt once expired (reconcile)");
    }

    fn refuse(&self, code: ErrorCode, message: &str) -> Response {
        Response::Reject(Reject::build(code, &self.node.address, message, &[]))
    }
}

/// `prepare` through the node's own packet path from the local `account`, its answer parsed. The
/// node's own answers always parse; were one not to, the packet's fate is unknown: T00.
pub async fn forward_from<S: Store>(node: &Node<S>, account: &Account, prepare: Prepare) -> Response {
    match Response::parse(node.forward(account, prepare).await) {
        Ok(answer) => answer,
        Err(e) => {
            warn!(error = %e, "the packet path's answer did not parse");
            Response::Reject(Reject::build(
                ErrorCode::T00_INTERNAL_ERROR,
                &node.address,
                "internal error",
                &[],
            ))
        }
    }
}

/// What a Fulfill's STREAM reply says arrived (its `prepare_amount`).
fn delivered_by(keys: &StreamKeys, data: &[u8]) -> Option<u64> {
    Some(StreamPacket::decode(&keys.decrypt(data).ok()?).ok()?.prepare_amount)
}
