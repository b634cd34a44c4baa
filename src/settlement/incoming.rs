//! What settlement engines ask of the node through their callback listener
//! ([`Callbacks`] for [`Node`]): credit an incoming settlement, and carry a message to the peer's
//! engine inside a `peer.settle` Prepare.

use super::{Callbacks, IncomingError, MessageError, Quantity};
use crate::account::Account;
use crate::http::client::SendError;
use crate::node::Node;
use crate::packet::{IlpAddress, Prepare, Response, DATA_BYTES_MAX};
use crate::store::{IncomingCredit, Store};
use bytes::Bytes;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// Where engines' messages go (RFC 0038): never routed further by the peer.
pub const PEER_SETTLE: &str = "peer.settle";

/// The fulfillment of every `peer.settle` exchange: 32 zero bytes. (RFC 0038's text gives
/// SHA-256 of the empty string as the condition, which no fulfillment can meet; implementations
/// use the hash of this fulfillment instead, and so does this node.)
pub const PEER_SETTLE_FULFILLMENT: [u8; 32] = [0; 32];

/// SHA-256 of [`PEER_SETTLE_FULFILLMENT`].
pub fn peer_settle_condition() -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, &PEER_SETTLE_FULFILLMENT);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// How long a message may take to come back from the peer.
const MESSAGE_EXPIRY: Duration = Duration::from_secs(30);

impl<S: Store> Callbacks for Node<S> {
    async fn incoming_settlement(
        &self,
        account: &str,
        idempotency_key: &str,
        quantity: Quantity,
    ) -> Result<Quantity, IncomingError> {
        let account = self.settling_account(account).map_err(|e| match e {
            Missing::Account(id) => IncomingError::UnknownAccount(id),
            Missing::Engine(id) => IncomingError::NoEngine(id),
        })?;
        let credited = match self.store.credit_settlement(&account, idempotency_key, quantity).await? {
            IncomingCredit::Credited { credited } => {
                tracing::info!(account = %account.id, %quantity, credited, "incoming settlement credited");
                // The credit may have taken the balance above the threshold.
                self.settlement.check(&account);
                credited
            }
            IncomingCredit::Repeated { credited } => credited,
            IncomingCredit::KeyReused => return Err(IncomingError::KeyReused),
            IncomingCredit::TooLarge => return Err(IncomingError::TooLarge(account.id.to_string())),
        };
        if account.rafiki_liquidity.is_some() {
            // Money from a Rafiki peer's side: the Rafiki's figure of the node's liquidity drops
            // by what was credited. Recorded before the engine is answered, with ids derived from
            // the engine's key, and on a repeat too (an earlier call may have credited and then
            // failed to record): no store record is needed, because until the answer is 2xx the
            // engine calls again with the same key (RFC 0038), the credit above is not repeated,
            // and the withdrawal is recorded then, once.
            crate::rafiki::withdrawals::record(self, &account, idempotency_key, credited)
                .await
                .map_err(|e| IncomingError::WithdrawalUnrecorded(e.to_string()))?;
        }
        Ok(quantity)
    }

    async fn send_message(&self, account: &str, message: Bytes) -> Result<Bytes, MessageError> {
        let account = self.settling_account(account).map_err(|e| match e {
            Missing::Account(id) => MessageError::UnknownAccount(id),
            Missing::Engine(id) => MessageError::NoEngine(id),
        })?;
        let outgoing =
            account.outgoing.as_ref().ok_or_else(|| MessageError::NoOutgoing(account.id.to_string()))?;
        if message.len() > DATA_BYTES_MAX {
            return Err(MessageError::TooLarge(message.len()));
        }
        let expires_at = SystemTime::now() + MESSAGE_EXPIRY.min(self.expiry.hold_time_max);
        let prepare = Prepare::build(peer_settle(), 0, expires_at, &peer_settle_condition(), &message);
        let deadline = tokio::time::Instant::now() + MESSAGE_EXPIRY.min(self.expiry.hold_time_max);
        match self.client.send(outgoing, prepare.into_bytes(), deadline).await {
            Ok(Response::Fulfill(fulfill)) => Ok(Bytes::copy_from_slice(fulfill.data())),
            Ok(Response::Reject(reject)) => Err(MessageError::Rejected {
                code: String::from_utf8_lossy(&<[u8; 3]>::from(reject.code())).into_owned(),
                data: Bytes::copy_from_slice(reject.data()),
            }),
            Err(SendError::TimedOut) => {
                Err(MessageError::Unreachable("the peer did not answer in time".into()))
            }
            Err(e) => Err(MessageError::Unreachable(e.to_string())),
        }
    }
}

enum Missing {
    Account(String),
    Engine(String),
}

impl<S: Store> Node<S> {
    /// The account, if the node serves it and it settles through an engine.
    fn settling_account(&self, id: &str) -> Result<Arc<Account>, Missing> {
        let account =
            self.accounts.load().get(id).cloned().ok_or_else(|| Missing::Account(id.to_string()))?;
        match account.settlement_engine_url {
            Some(_) => Ok(account),
            None => Err(Missing::Engine(id.to_string())),
        }
    }
}

pub fn peer_settle() -> &'static IlpAddress {
    static ADDRESS: OnceLock<IlpAddress> = OnceLock::new();
    ADDRESS.get_or_init(|| IlpAddress::parse(PEER_SETTLE).expect("peer.settle is a valid address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::App;
    use crate::config::Config;

    const CONFIG: &str = r#"
[node]
ilp_address = "test.node"
[[accounts]]
id = "peer"
relation = "peer"
asset_code = "USD"
asset_scale = 2
incoming_token = "t"
settlement_engine_url = "http://127.0.0.1:1/engine"
[[accounts]]
id = "plain"
relation = "child"
asset_code = "USD"
asset_scale = 2
incoming_token = "u"
"#;

    async fn node() -> Arc<Node<crate::store::MemoryStore>> {
        let mut config = Config::from_toml(CONFIG).unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.settlement.listen = "127.0.0.1:0".parse().unwrap();
        App::bind(config).await.unwrap().node
    }

    #[tokio::test]
    async fn incoming_settlements_are_credited_once_per_key() {
        let node = node().await;
        let q = Quantity::new(1_500_000_000, 9);
        assert_eq!(node.incoming_settlement("peer", "k", q).await, Ok(q));
        assert_eq!(node.incoming_settlement("peer", "k", q).await, Ok(q), "a repeat answers the same");
        assert_eq!(node.store.balance("peer").await, Ok(150));
        let other = Quantity::new(1, 9);
        assert_eq!(node.incoming_settlement("peer", "k", other).await, Err(IncomingError::KeyReused));
        let huge = Quantity::new(10u128.pow(30), 2);
        assert_eq!(
            node.incoming_settlement("peer", "h", huge).await,
            Err(IncomingError::TooLarge("peer".into()))
        );
        assert_eq!(
            node.incoming_settlement("nobody", "k", q).await,
            Err(IncomingError::UnknownAccount("nobody".into()))
        );
        assert_eq!(
            node.incoming_settlement("plain", "k", q).await,
            Err(IncomingError::NoEngine("plain".into()))
        );
        assert_eq!(node.store.balance("peer").await, Ok(150));
        assert_eq!(node.store.balance("plain").await, Ok(0));
    }

    #[tokio::test]
    async fn messages_need_an_outgoing_link_and_fit_a_packet() {
        let node = node().await;
        let small = Bytes::from_static(b"hello");
        assert_eq!(
            node.send_message("peer", small.clone()).await,
            Err(MessageError::NoOutgoing("peer".into()))
        );
        assert_eq!(
            node.send_message("plain", small.clone()).await,
            Err(MessageError::NoEngine("plain".into()))
        );
        assert_eq!(node.send_message("x", small).await, Err(MessageError::UnknownAccount("x".into())));
    }

    #[test]
    fn the_peer_settle_condition_is_the_hash_of_zeros() {
        assert_eq!(
            hex::encode(peer_settle_condition()),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert_eq!(peer_settle().as_str(), "peer.settle");
    }
}
