//! Payments the node sends and receives itself, booked on its local accounts (relation
//! `local`): the STREAM [`receiver`] that answers packets addressed to them, and the
//! [`completions`] worker that hands each completed incoming payment to the node's hook.
//!
//! Layer 5, beside [`crate::forward`]: the packet path hands a local account's packet to
//! [`Node::receive_locally`](crate::node::Node) and settles the source's side itself; the edges
//! (the SPSP listener, the admin API) call down into this module.

pub mod completions;
pub mod outgoing;
pub mod receiver;

use crate::store::IncomingPaymentId;

/// The receiver name the STREAM credentials of a local account (or of one of its incoming
/// payments) are bound to: the SHA-256 of `account ‖ 0 ‖ payment` in hex, cut to 32 characters
/// (128 bits). A hash, so that no account id and payment id can spell the name of another
/// pair (a token issued for one can never open another), and so that the name is one short
/// address segment whatever the ids' lengths.
pub fn receiver_name(account: &str, payment: Option<&IncomingPaymentId>) -> String {
    let mut input = Vec::with_capacity(account.len() + 65);
    input.extend_from_slice(account.as_bytes());
    input.push(0);
    if let Some(payment) = payment {
        input.extend_from_slice(payment.as_str().as_bytes());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    hex::encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_names_tell_every_pair_apart_and_are_address_segments() {
        let p = |s: &str| IncomingPaymentId::parse(s).unwrap();
        let names = [
            receiver_name("alice", None),
            receiver_name("alice", Some(&p("inv1"))),
            receiver_name("alice", Some(&p("inv2"))),
            receiver_name("alic", Some(&p("einv1"))),
            receiver_name("bob", None),
        ];
        for (i, a) in names.iter().enumerate() {
            assert_eq!(a.len(), 32);
            assert!(crate::rules::is_segment(a));
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(receiver_name("alice", None), receiver_name("alice", None), "stable across instances");
    }
}
