//! The packet's path through the node, top to bottom in [`Node::forward`].
//!
//! Ordering rules:
//! - every check that can refuse a packet runs before the source is debited, so a refusal never
//!   needs a reversal;
//! - once the debit succeeded, every path out of [`Node::send_and_settle`] either commits it and
//!   credits the destination (a valid Fulfill, both written before the Fulfill is relayed) or
//!   releases it (anything else), exactly once; a release the store cannot write is left to the
//!   sweeper, which releases the reservation after the packet's expiry;
//! - the Fulfill's preimage is checked before anything is credited.
//!
//! Known gap (recorded for the Redis work): if, after a Fulfill, the commit fails while the
//! credit succeeds, the Fulfill is still relayed and the sweeper later releases the source's
//! reservation, so the source is not charged for that packet. The error is logged with the
//! packet id for reconciliation.

use crate::account::{constant_time_eq, Account, Accounts, Relation};
use crate::balance::AMOUNT_MAX;
use crate::http::client::{HttpClient, SendError};
use crate::ildcp;
use crate::packet::{is_under, IlpAddress, Prepare, Response};
use crate::rates::{Asset, ConvertError, Rates};
use crate::reject::Refusal;
use crate::routing::Router;
use crate::settlement;
use crate::shutdown::{Phase, ShutdownSignal};
use crate::store::{DebitError, PacketId, Store};
use arc_swap::ArcSwap;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{debug, error, warn, Instrument};

/// Timing rules for outgoing Prepares.
#[derive(Debug, Clone)]
pub struct ExpiryRules {
    /// Taken off the incoming expiry so we can still relay the outcome in time.
    pub margin: Duration,
    /// No outgoing Prepare holds our liquidity longer than this.
    pub hold_time_max: Duration,
    /// Less than this left to the next hop: R02 rather than a packet doomed to expire.
    pub outgoing_window_min: Duration,
}

/// One connector node: its identity, tables, balances and the way out.
pub struct Node<S> {
    pub address: IlpAddress,
    pub accounts: ArcSwap<Accounts>,
    pub router: Router,
    pub rates: ArcSwap<Rates>,
    pub store: S,
    pub client: HttpClient,
    pub expiry: ExpiryRules,
    pub shutdown: ShutdownSignal,
}

/// A Prepare after routing and conversion, ready to leave.
struct Outbound {
    to: Arc<Account>,
    prepare: Prepare,
    amount_in: u64,
    amount_out: u64,
    deadline: tokio::time::Instant,
    expires_at: SystemTime,
}

impl<S: Store> Node<S> {
    /// Handles one Prepare from an authenticated account; returns the Fulfill or Reject bytes.
    pub async fn forward(&self, from: &Account, prepare: Prepare) -> Bytes {
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
            let code = match &response {
                Response::Fulfill(_) => *b"FUL",
                Response::Reject(r) => <[u8; 3]>::from(r.code()),
            };
            tracing::Span::current().record("code", std::str::from_utf8(&code).unwrap_or("???"));
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
        // 2. Peer protocols are answered here, never routed.
        if prepare.destination().starts_with("peer.") {
            return self.answer_peer_protocol(from, &prepare);
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

    /// ILDCP for children; any other `peer.*` destination is not served here.
    fn answer_peer_protocol(&self, from: &Account, prepare: &Prepare) -> Result<Response, Refusal> {
        match (prepare.destination(), from.relation, &from.ilp_address) {
            (ildcp::DESTINATION, Relation::Child, Some(address)) => {
                Ok(Response::Fulfill(ildcp::response(address, &from.asset_code, from.asset_scale)))
            }
            (ildcp::DESTINATION, _, _) => {
                Err(Refusal::Unreachable("peer.config is answered for child accounts only"))
            }
            _ => Err(Refusal::Unreachable("peer protocol not served by this node")),
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
        let expires_at = self.outgoing_expiry(prepare.expires_at(), now)?;
        prepare.set_amount_and_expiry(amount_out, expires_at);
        let left = expires_at.duration_since(now).unwrap_or_default();
        Ok(Outbound {
            to,
            prepare,
            amount_in,
            amount_out,
            deadline: tokio::time::Instant::now() + left,
            expires_at,
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
        if to.outgoing.is_none() {
            return Err(Refusal::Unreachable("next hop has no outgoing URL"));
        }
        Ok(to.clone())
    }

    /// The incoming expiry minus our margin, capped by the maximum hold time.
    fn outgoing_expiry(&self, incoming: SystemTime, now: SystemTime) -> Result<SystemTime, Refusal> {
        let shortened = incoming.checked_sub(self.expiry.margin).ok_or(Refusal::InsufficientTimeout)?;
        let capped = shortened.min(now + self.expiry.hold_time_max);
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
        let Outbound { to, prepare, amount_in, amount_out, deadline, expires_at } = out;
        let outgoing = to.outgoing.as_ref().expect("route() only returns accounts with an outgoing URL");
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
                let (committed, credited) = tokio::join!(
                    self.store.commit_prepare(from, amount_in, packet),
                    self.store.credit_fulfill(&to, amount_out, packet),
                );
                // The money moved downstream whatever our store says: relay the Fulfill so the
                // sender pays us, and make any gap loud for reconciliation.
                if let Err(e) = committed {
                    error!(error = %e, from = %from.id, %packet, amount = amount_in, "fulfilled packet's debit not committed");
                }
                match credited {
                    Ok(balance) => settlement::after_credit(&to, balance),
                    Err(e) => {
                        error!(error = %e, to = %to.id, %packet, amount = amount_out, "fulfilled packet not credited")
                    }
                }
                Ok(Response::Fulfill(fulfill))
            }
            Ok(Response::Fulfill(_)) => {
                warn!(to = %to.id, "fulfillment does not match the condition");
                self.reverse(from, packet).await;
                Err(Refusal::WrongCondition)
            }
            Ok(Response::Reject(reject)) => {
                self.reverse(from, packet).await;
                Ok(Response::Reject(reject))
            }
            Err(e) => {
                self.reverse(from, packet).await;
                debug!(error = %e, to = %to.id, "send failed");
                Err(self.send_refusal(e, expires_at))
            }
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
    async fn reverse(&self, from: &Account, packet: PacketId) {
        if let Err(e) = self.store.reverse_prepare(from, packet).await {
            error!(error = %e, from = %from.id, %packet, "could not reverse a prepare debit");
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
