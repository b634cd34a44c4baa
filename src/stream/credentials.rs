//! Stateless receiver credentials: per SPSP query, a token for the receiver's address and the
//! connection's shared secret, both re-derivable from the server secret alone.
//!
//! A receiver `bob` of the node `g.node` is paid at `g.node.bob.<token>`. The construction:
//!
//! ```text
//! mac_key       = HMAC-SHA256(server_secret, "thitsax stream token mac")
//! secret_key    = HMAC-SHA256(server_secret, "thitsax stream shared secret")
//! nonce         = 15 random bytes
//! mac           = HMAC-SHA256(mac_key, version ‖ len(receiver) ‖ receiver ‖ nonce)
//! token         = base64url(version ‖ nonce ‖ mac), no padding: 48 bytes, 64 characters
//! shared_secret = HMAC-SHA256(secret_key, len(receiver) ‖ receiver ‖ version ‖ nonce ‖ mac)
//! ```
//!
//! Why each part:
//! - **No state.** Everything a packet needs is in its address and the server secret, so any
//!   instance holding the secret answers any packet, and nothing is stored per query.
//! - **The random nonce** makes every query its own connection with its own secret, and tokens
//!   unguessable and unlinkable. 120 bits: two queries will not share one.
//! - **The MAC** recognises a made-up or altered token with one HMAC, before any key is derived or
//!   anything decrypted, and tells "not ours" (answer F02, as the JS reference does for a token it
//!   cannot read) from "ours, but not this sender's data" (F06). It covers the receiver, so a token
//!   issued for one receiver fails at another. It is checked in constant time (`ring::hmac::verify`).
//! - **The shared secret** needs the server secret, which never leaves the node; the token is
//!   public (every connector on the path sees it) and reveals nothing of it. Deriving it from the
//!   receiver too means a token moved to another receiver could not decrypt even if its MAC passed.
//! - **Two subkeys** with their own labels keep the public MAC and the secret apart: neither is an
//!   HMAC under the key of the other, whatever the inputs.
//! - **The version byte** lets a later construction (a key identifier for rotating the server
//!   secret, an authenticated payload) be told apart; version 1 carries nothing else.
//! - **base64url** without padding keeps the token inside an ILP address segment
//!   (`[A-Za-z0-9_~-]`); 48 bytes encode to exactly 64 characters, with no partial group, so every
//!   token has one spelling.

use super::crypto::SharedSecret;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// A receiver name is one address segment of at most this many bytes.
pub const RECEIVER_BYTES_MAX: usize = 64;
/// Every token is this long: 48 bytes in base64url.
pub const TOKEN_CHARS: usize = 64;

const VERSION: u8 = 1;
const NONCE_BYTES: usize = 15;
const MAC_BYTES: usize = 32;
const TOKEN_BYTES: usize = 1 + NONCE_BYTES + MAC_BYTES;
const MAC_KEY_LABEL: &[u8] = b"thitsax stream token mac";
const SECRET_KEY_LABEL: &[u8] = b"thitsax stream shared secret";

/// Why credentials could not be issued or a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("a receiver name is 1 to {RECEIVER_BYTES_MAX} of A-Z a-z 0-9 _ ~ -")]
    Receiver,
    #[error("a token is {TOKEN_CHARS} base64url characters")]
    TokenFormat,
    #[error("token version {0} is unknown")]
    TokenVersion(u8),
    #[error("token was not issued by this server for this receiver")]
    TokenMac,
    #[error("the system's random number generator failed")]
    Random,
}

/// What one SPSP query hands out: the token for the address, the secret for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The last segment of the address: `<node address>.<receiver>.<token>`.
    pub token: String,
    pub shared_secret: SharedSecret,
}

/// The node's STREAM server secret: 32 bytes shared by every instance. Only the two keys derived
/// from it are kept; `Debug` shows neither.
#[derive(Clone)]
pub struct ServerSecret {
    mac_key: hmac::Key,
    secret_key: hmac::Key,
}

impl ServerSecret {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let subkey = |label: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&root, label).as_ref());
        ServerSecret { mac_key: subkey(MAC_KEY_LABEL), secret_key: subkey(SECRET_KEY_LABEL) }
    }

    /// New credentials for `receiver`, under a fresh random nonce.
    pub fn issue(&self, receiver: &str) -> Result<Credentials, CredentialsError> {
        let mut nonce = [0u8; NONCE_BYTES];
        SystemRandom::new().fill(&mut nonce).map_err(|_| CredentialsError::Random)?;
        self.issue_with_nonce(receiver, nonce)
    }

    pub(crate) fn issue_with_nonce(
        &self,
        receiver: &str,
        nonce: [u8; NONCE_BYTES],
    ) -> Result<Credentials, CredentialsError> {
        check_receiver(receiver)?;
        let mut token = [0u8; TOKEN_BYTES];
        token[0] = VERSION;
        token[1..1 + NONCE_BYTES].copy_from_slice(&nonce);
        let mac = hmac::sign(&self.mac_key, &mac_input(receiver, &token[..1 + NONCE_BYTES]));
        token[1 + NONCE_BYTES..].copy_from_slice(mac.as_ref());
        Ok(Credentials { token: base64url_encode(&token), shared_secret: self.derive(receiver, &token) })
    }

    /// The shared secret of the connection a packet to `<node>.<receiver>.<token>` belongs to,
    /// if this server issued `token` for `receiver`.
    pub fn shared_secret(&self, receiver: &str, token: &str) -> Result<SharedSecret, CredentialsError> {
        check_receiver(receiver)?;
        let bytes = base64url_decode(token).ok_or(CredentialsError::TokenFormat)?;
        if bytes[0] != VERSION {
            return Err(CredentialsError::TokenVersion(bytes[0]));
        }
        let (head, mac) = bytes.split_at(1 + NONCE_BYTES);
        hmac::verify(&self.mac_key, &mac_input(receiver, head), mac)
            .map_err(|_| CredentialsError::TokenMac)?;
        Ok(self.derive(receiver, &bytes))
    }

    fn derive(&self, receiver: &str, token: &[u8; TOKEN_BYTES]) -> SharedSecret {
        let mut ctx = hmac::Context::with_key(&self.secret_key);
        ctx.update(&[receiver.len() as u8]);
        ctx.update(receiver.as_bytes());
        ctx.update(token);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        SharedSecret::from_bytes(out)
    }
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(***)")
    }
}

/// `(receiver, token)` of a destination `<node_address>.<receiver>.<token>`, or `None` when the
/// destination is not exactly two segments under the node's address.
pub fn split_destination<'a>(node_address: &str, destination: &'a str) -> Option<(&'a str, &'a str)> {
    let local = destination.strip_prefix(node_address)?.strip_prefix('.')?;
    let (receiver, token) = local.split_once('.')?;
    (!receiver.is_empty() && !token.is_empty() && !token.contains('.')).then_some((receiver, token))
}

/// `version ‖ len(receiver) ‖ receiver ‖ nonce` from the token's head (`version ‖ nonce`): the
/// length first, so no receiver name and nonce can be read as another pair.
fn mac_input(receiver: &str, head: &[u8]) -> Vec<u8> {
    let (version, nonce) = head.split_at(1);
    let mut input = Vec::with_capacity(2 + receiver.len() + nonce.len());
    input.extend_from_slice(version);
    input.push(receiver.len() as u8);
    input.extend_from_slice(receiver.as_bytes());
    input.extend_from_slice(nonce);
    input
}

fn check_receiver(receiver: &str) -> Result<(), CredentialsError> {
    let valid = !receiver.is_empty()
        && receiver.len() <= RECEIVER_BYTES_MAX
        && receiver.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'~' | b'-'));
    valid.then_some(()).ok_or(CredentialsError::Receiver)
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// 48 bytes in base64url: 16 groups of 3 bytes, each 4 characters.
fn base64url_encode(bytes: &[u8; TOKEN_BYTES]) -> String {
    let mut out = String::with_capacity(TOKEN_CHARS);
    for group in bytes.chunks_exact(3) {
        let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for shift in [18, 12, 6, 0] {
            out.push(char::from(BASE64URL[(n >> shift & 0x3f) as usize]));
        }
    }
    out
}

/// The 48 bytes of a token, or `None` unless it is exactly 64 base64url characters.
fn base64url_decode(token: &str) -> Option<[u8; TOKEN_BYTES]> {
    if token.len() != TOKEN_CHARS {
        return None;
    }
    let mut out = [0u8; TOKEN_BYTES];
    for (chars, bytes) in token.as_bytes().chunks_exact(4).zip(out.chunks_exact_mut(3)) {
        let mut n = 0u32;
        for &c in chars {
            n = n << 6 | u32::from(sextet(c)?);
        }
        bytes.copy_from_slice(&n.to_be_bytes()[1..]);
    }
    Some(out)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::validate_address;

    fn server() -> ServerSecret {
        ServerSecret::from_bytes(&[42; 32])
    }

    #[test]
    fn an_issued_token_gives_back_its_shared_secret() {
        let issued = server().issue("bob").unwrap();
        assert_eq!(issued.token.len(), TOKEN_CHARS);
        assert_eq!(server().shared_secret("bob", &issued.token), Ok(issued.shared_secret.clone()));
        // Another instance with the same server secret derives the same, with no state.
        let other_instance = ServerSecret::from_bytes(&[42; 32]);
        assert_eq!(other_instance.shared_secret("bob", &issued.token), Ok(issued.shared_secret));
    }

    #[test]
    fn every_query_gets_its_own_token_and_secret() {
        let a = server().issue("bob").unwrap();
        let b = server().issue("bob").unwrap();
        assert_ne!(a.token, b.token);
        assert_ne!(a.shared_secret, b.shared_secret);
    }

    #[test]
    fn the_token_is_an_address_segment() {
        for _ in 0..64 {
            let issued = server().issue("bob").unwrap();
            validate_address(format!("g.node.bob.{}", issued.token).as_bytes()).unwrap();
        }
    }

    #[test]
    fn a_token_works_only_for_the_receiver_it_was_issued_for() {
        let issued = server().issue("bob").unwrap();
        assert_eq!(server().shared_secret("alice", &issued.token), Err(CredentialsError::TokenMac));
        assert_eq!(server().shared_secret("bobb", &issued.token), Err(CredentialsError::TokenMac));
    }

    #[test]
    fn another_server_secret_refuses_the_token() {
        let issued = server().issue("bob").unwrap();
        let other = ServerSecret::from_bytes(&[43; 32]);
        assert_eq!(other.shared_secret("bob", &issued.token), Err(CredentialsError::TokenMac));
    }

    #[test]
    fn every_altered_character_is_refused() {
        let issued = server().issue("bob").unwrap();
        for i in 0..TOKEN_CHARS {
            let mut altered = issued.token.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            let refused = server().shared_secret("bob", &altered);
            assert!(
                matches!(refused, Err(CredentialsError::TokenMac | CredentialsError::TokenVersion(_))),
                "character {i}: {refused:?}"
            );
        }
    }

    #[test]
    fn made_up_tokens_are_refused_by_their_form_or_their_mac() {
        let s = server();
        assert_eq!(s.shared_secret("bob", ""), Err(CredentialsError::TokenFormat));
        assert_eq!(s.shared_secret("bob", &"A".repeat(63)), Err(CredentialsError::TokenFormat));
        assert_eq!(s.shared_secret("bob", &"A".repeat(65)), Err(CredentialsError::TokenFormat));
        assert_eq!(s.shared_secret("bob", &"+".repeat(64)), Err(CredentialsError::TokenFormat));
        assert_eq!(s.shared_secret("bob", &"é".repeat(32)), Err(CredentialsError::TokenFormat));
        assert_eq!(s.shared_secret("bob", &"A".repeat(64)), Err(CredentialsError::TokenVersion(0)));
        // Version 1 ("AQ" starts 0x01), the rest made up.
        assert_eq!(s.shared_secret("bob", &format!("AQ{}", "A".repeat(62))), Err(CredentialsError::TokenMac));
    }

    #[test]
    fn receiver_names_are_one_bounded_address_segment() {
        let s = server();
        for bad in ["", "a.b", "a b", "é", &"x".repeat(RECEIVER_BYTES_MAX + 1)] {
            assert_eq!(s.issue(bad), Err(CredentialsError::Receiver), "{bad:?}");
            assert_eq!(s.shared_secret(bad, &"A".repeat(64)), Err(CredentialsError::Receiver));
        }
        for good in ["a", "A-z_0~9", &"x".repeat(RECEIVER_BYTES_MAX)] {
            assert!(s.issue(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn the_construction_is_the_one_documented() {
        // Pins the construction: a change would strand every token handed out. The expected
        // values were computed apart from this code, from the module doc, with Python's hmac.
        let issued = server().issue_with_nonce("bob", [0; NONCE_BYTES]).unwrap();
        assert_eq!(issued.token, "AQAAAAAAAAAAAAAAAAAAABfe71XIx5x6xFwD1WJZugC70iWU6zySMd3wUj2PcPyR");
        assert_eq!(
            hex::encode(issued.shared_secret.as_bytes()),
            "3be1ff91c7609be5556d2d1a03c0a59887dcf804d314f013ff4e53fe241cb250"
        );
        assert_eq!(server().shared_secret("bob", &issued.token), Ok(issued.shared_secret));
    }

    #[test]
    fn base64url_round_trips_every_byte() {
        let mut bytes = [0u8; TOKEN_BYTES];
        for start in [0u8, 48, 96, 144, 192, 240] {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = start.wrapping_add(i as u8);
            }
            assert_eq!(base64url_decode(&base64url_encode(&bytes)), Some(bytes));
        }
        assert_eq!(&base64url_encode(&[0xfb; TOKEN_BYTES])[..4], "-_v7");
    }

    #[test]
    fn destinations_split_into_receiver_and_token() {
        assert_eq!(split_destination("g.node", "g.node.bob.TOKEN"), Some(("bob", "TOKEN")));
        assert_eq!(split_destination("g.node", "g.node.bob"), None);
        assert_eq!(split_destination("g.node", "g.node.bob.T.x"), None);
        assert_eq!(split_destination("g.node", "g.nodex.bob.T"), None);
        assert_eq!(split_destination("g.node", "g.node..T"), None);
        assert_eq!(split_destination("g.node", "g.other.bob.T"), None);
    }

    #[test]
    fn debug_output_shows_no_secret() {
        assert_eq!(format!("{:?}", server()), "ServerSecret(***)");
        let issued = server().issue("bob").unwrap();
        assert!(!format!("{issued:?}").contains(&format!("{:?}", issued.shared_secret.as_bytes())));
    }
}
