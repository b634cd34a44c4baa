//! The node's STREAM receiver: answers the packets addressed to a local account
//! (`<node>.<account>.<token>`) or to one of its incoming payments
//! (`<node>.<account>.<payment>.<token>`), with no state of its own: the token proves the node
//! issued it (for that receiver), the shared secret is derived from it and the server secret,
//! and the money is recorded by one atomic store step per packet.
//!
//! Steps, each refusing what it cannot take, with nothing moved before the last:
//! 1. the receiver the destination names (F02 for an address the node never issued);
//! 2. the connection's keys from the token (F02 for a token that is not ours);
//! 3. the STREAM packet opened (F06 when it does not decrypt: not this connection's data);
//! 4. its verdict: a probe or a packet below the sender's minimum gets an F99 reply saying what
//!    arrived (how a sender learns the rate); a packet closing the connection takes no money;
//! 5. [`Store::receive_stream`]: credits the account, checks and adds to the payment, exactly
//!    once per packet, and once per STREAM packet (its connection and sequence number): the same
//!    STREAM packet replayed in another ILP packet is refused (F99), so its money moves once; only
//!    then is the Fulfill built. A packet past the payment's target gets an F99 reply with what the
//!    payment may still take; one for a payment completed or expired an F99 reply that closes
//!    the connection.

use crate::account::Account;
use crate::metrics::ReceivedOutcome;
use crate::node::Node;
use crate::packet::{ErrorCode, Fulfill, Prepare, Reject, Response};
use crate::pending;
use crate::store::{IncomingPaymentId, PacketId, Receipt, ReceiveRefusal, ReplayKey, Store, StoreError};
use crate::stream::frame::ErrorCode as StreamCode;
use crate::stream::{self, Opened, Reply, Verdict};
use std::time::SystemTime;
use tracing::{debug, error, warn};

/// Why a packet was not for any receiver of this node: answered before any key is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotOurs {
    /// The destination is not `<account address>[.<payment>].<token>`.
    Address,
    /// The token was not issued by this node for this receiver.
    Token,
}

impl<S: Store> Node<S> {
    /// Answers one packet for the local account `to`; `amount` is what arrived, in its units.
    /// A Fulfill means the account (and its incoming payment) were credited, exactly once;
    /// anything else moved nothing. Store writes are retried until `until`, the last moment the
    /// answer can still be relayed in time.
    pub async fn receive_locally(
        &self,
        to: &Account,
        prepare: &Prepare,
        amount: u64,
        packet: PacketId,
        until: tokio::time::Instant,
    ) -> Response {
        let (response, outcome) = self.answer_locally(to, prepare, amount, packet, until).await;
        self.metrics.stream_received(&to.id, outcome, amount);
        response
    }

    async fn answer_locally(
        &self,
        to: &Account,
        prepare: &Prepare,
        amount: u64,
        packet: PacketId,
        until: tokio::time::Instant,
    ) -> (Response, ReceivedOutcome) {
        use ReceivedOutcome::*;
        // 1-2. Which receiver, and the connection's keys.
        let (payment, keys) = match self.connection_of(to, prepare.destination()) {
            Ok(found) => found,
            Err(why) => {
                debug!(account = %to.id, ?why, "packet for a local account with an address the node did not issue");
                return (self.refuse(ErrorCode::F02_UNREACHABLE, "unknown receiver", &[]), NotOurs);
            }
        };
        // 3. Open the STREAM packet.
        let opened = match stream::open(&keys, amount, prepare.execution_condition(), prepare.data()) {
            Ok(opened) => opened,
            Err(refused) => {
                debug!(account = %to.id, error = %refused, "STREAM packet refused");
                return (self.refuse(refused.code(), "", &[]), NotOurs);
            }
        };
        let reply = opened.reply().asset_details(&to.asset_code, to.asset_scale);
        // 4. Only a fulfillable packet may move money.
        if opened.verdict() != Verdict::Fulfillable {
            return (self.reply_reject(&opened, &reply), Unfulfillable);
        }
        if opened.connection_close().is_some() && amount > 0 {
            let reply = reply.close_connection(StreamCode::NoError, "");
            return (self.reply_reject(&opened, &reply), Unfulfillable);
        }
        // 5. Record it, then fulfil.
        let now = SystemTime::now();
        let replay = ReplayKey::of(prepare.destination(), opened.sequence());
        let receipt = crate::forward::retry_until(until, pending::retryable, || {
            self.store.receive_stream(to, payment.as_ref(), amount, packet, Some(replay), now)
        })
        .await;
        match receipt {
            Ok(Receipt::Received { completed, .. }) => {
                if completed {
                    self.receiving.completed.notify_one();
                }
                (self.fulfill(&opened, reply), Fulfilled)
            }
            Ok(Receipt::Repeated { .. }) => (self.fulfill(&opened, reply), Fulfilled),
            Ok(Receipt::Refused(refusal)) => {
                debug!(account = %to.id, ?refusal, "packet refused by its incoming payment");
                (self.reply_reject(&opened, &closing(reply, &opened, refusal)), PaymentRefused)
            }
            Err(e) => (self.store_failed(to, packet, amount, e), StoreFailed),
        }
    }

    /// The payment (if any) and keys of the connection `destination` belongs to.
    fn connection_of(
        &self,
        to: &Account,
        destination: &str,
    ) -> Result<(Option<IncomingPaymentId>, stream::StreamKeys), NotOurs> {
        let address = to.ilp_address.as_ref().ok_or(NotOurs::Address)?;
        let rest = destination.strip_prefix(address.as_str()).and_then(|r| r.strip_prefix('.'));
        let rest = rest.ok_or(NotOurs::Address)?;
        let (payment, token) = match rest.split_once('.') {
            None => (None, rest),
            Some((payment, token)) if !token.contains('.') => {
                (Some(IncomingPaymentId::parse(payment).ok_or(NotOurs::Address)?), token)
            }
            Some(_) => return Err(NotOurs::Address),
        };
        let name = super::receiver_name(&to.id, payment.as_ref());
        let secret = self.receiving.secret.shared_secret(&name, token).map_err(|_| NotOurs::Token)?;
        Ok((payment, secret.keys()))
    }

    fn refuse(&self, code: ErrorCode, message: &str, data: &[u8]) -> Response {
        Response::Reject(Reject::build(code, &self.address, message, data))
    }

    /// An F99 Reject carrying the encrypted reply (what arrived, and why the money was not taken).
    fn reply_reject(&self, opened: &Opened<'_>, reply: &Reply) -> Response {
        match opened.reject(reply) {
            Ok(data) => self.refuse(stream::receiver::REJECT_CODE, "", &data),
            Err(e) => {
                // The reply is a few frames: only a failing random source gets here.
                error!(error = %e, "STREAM reply could not be built");
                self.refuse(ErrorCode::T00_INTERNAL_ERROR, "", &[])
            }
        }
    }

    /// The Fulfill: the money is recorded already.
    fn fulfill(&self, opened: &Opened<'_>, reply: Reply) -> Response {
        match opened.fulfill(&reply) {
            Ok(fulfilled) => Response::Fulfill(Fulfill::build(&fulfilled.fulfillment, &fulfilled.data)),
            Err(e) => {
                // Recorded, so it must be fulfilled: without the reply, the sender still gets its
                // fulfillment (it then learns the amount on its next packet).
                warn!(error = %e, "STREAM reply could not be built; fulfilling without it");
                let fulfillment = opened.fulfillment().expect("the verdict is Fulfillable");
                Response::Fulfill(Fulfill::build(&fulfillment, &[]))
            }
        }
    }

    /// The store could not record the packet: T00, the sender may retry. A failure whose
    /// outcome is unknown may have credited the account: logged for reconciliation.
    fn store_failed(&self, to: &Account, packet: PacketId, amount: u64, e: StoreError) -> Response {
        match &e {
            StoreError::Uncertain(_) => {
                error!(error = %e, account = %to.id, %packet, amount, "a received packet's credit may have been applied though the packet is refused; reconcile this packet")
            }
            _ => {
                warn!(error = %e, account = %to.id, %packet, "store failed on a received packet; refused with T00")
            }
        }
        self.refuse(ErrorCode::T00_INTERNAL_ERROR, "", &[])
    }
}

/// A refused packet's reply: what the payment holds, and the connection closed (nothing more
/// will be taken on it).
fn closing(reply: Reply, opened: &Opened<'_>, refusal: ReceiveRefusal) -> Reply {
    let stream = opened.money().first().map(|m| m.stream_id);
    match refusal {
        ReceiveRefusal::OverTarget { received, target } => match stream {
            // Not a close: a smaller packet may still fit.
            Some(id) => reply.max_money(id, target, received),
            None => reply,
        },
        ReceiveRefusal::Completed { .. } => reply.close_connection(StreamCode::NoError, "payment complete"),
        ReceiveRefusal::Expired { .. } => reply.close_connection(StreamCode::NoError, "payment expired"),
        // A replay (the same STREAM packet in a second ILP packet) is refused alone: the
        // connection itself is the sender's, and stays open.
        ReceiveRefusal::Replayed => reply,
        ReceiveRefusal::UnknownPayment => {
            reply.close_connection(StreamCode::ApplicationError, "no such payment")
        }
    }
}
