//! The store's Lua scripts, one per event (see "Scripts" in `mod.rs`), each built once per store
//! on the preludes it needs.

use redis::Script;

/// One field per script; [`Scripts::load`] names each one's file.
pub(super) struct Scripts {
    pub(super) prepare: Script,
    pub(super) fulfill_source: Script,
    pub(super) fulfill_destination: Script,
    pub(super) fulfill_destination_again: Script,
    pub(super) reject: Script,
    pub(super) sweep: Script,
    pub(super) audit: Script,
    pub(super) fold: Script,
    pub(super) settlement_begin: Script,
    pub(super) settlement_finish: Script,
    pub(super) settlement_claim: Script,
    pub(super) settlement_reference: Script,
    pub(super) payout_create: Script,
    pub(super) payout_claim: Script,
    pub(super) payout_reference: Script,
    pub(super) payout_finish: Script,
    pub(super) payout_act: Script,
    pub(super) settlement_incoming: Script,
    pub(super) incoming_create: Script,
    pub(super) incoming_receive: Script,
    pub(super) incoming_expire: Script,
    pub(super) incoming_handled: Script,
    pub(super) outgoing_create: Script,
    pub(super) outgoing_claim: Script,
    pub(super) outgoing_connection: Script,
    pub(super) outgoing_reserve: Script,
    pub(super) outgoing_record: Script,
    pub(super) outgoing_finish: Script,
}

impl Scripts {
    pub(super) fn load() -> Self {
        let with_prelude = |body: &str| Script::new(&format!("{}\n{}", include_str!("prelude.lua"), body));
        // The outgoing payments' scripts share their arithmetic on digits too.
        let outgoing = |body: &str| {
            let prelude =
                format!("{}\n{}", include_str!("prelude.lua"), include_str!("outgoing_prelude.lua"));
            Script::new(&format!("{prelude}\n{body}"))
        };
        Scripts {
            prepare: with_prelude(include_str!("process_prepare.lua")),
            fulfill_source: with_prelude(include_str!("process_fulfill_source.lua")),
            fulfill_destination: with_prelude(include_str!("process_fulfill_destination.lua")),
            fulfill_destination_again: with_prelude(include_str!("process_fulfill_destination_again.lua")),
            reject: with_prelude(include_str!("process_reject.lua")),
            sweep: with_prelude(include_str!("sweep_expired.lua")),
            audit: with_prelude(include_str!("audit_snapshot.lua")),
            fold: with_prelude(include_str!("journal_fold.lua")),
            settlement_begin: with_prelude(include_str!("settlement_begin.lua")),
            settlement_finish: with_prelude(include_str!("settlement_finish.lua")),
            settlement_claim: with_prelude(include_str!("settlement_claim.lua")),
            settlement_reference: with_prelude(include_str!("settlement_reference.lua")),
            payout_create: with_prelude(include_str!("payout_create.lua")),
            payout_claim: with_prelude(include_str!("payout_claim.lua")),
            payout_reference: with_prelude(include_str!("payout_reference.lua")),
            payout_finish: with_prelude(include_str!("payout_finish.lua")),
            payout_act: with_prelude(include_str!("payout_act.lua")),
            settlement_incoming: with_prelude(include_str!("settlement_incoming.lua")),
            incoming_create: with_prelude(include_str!("incoming_create.lua")),
            incoming_receive: with_prelude(include_str!("incoming_receive.lua")),
            incoming_expire: with_prelude(include_str!("incoming_expire.lua")),
            incoming_handled: with_prelude(include_str!("incoming_handled.lua")),
            outgoing_create: outgoing(include_str!("outgoing_create.lua")),
            outgoing_claim: outgoing(include_str!("outgoing_claim.lua")),
            outgoing_connection: outgoing(include_str!("outgoing_connection.lua")),
            outgoing_reserve: outgoing(include_str!("outgoing_reserve.lua")),
            outgoing_record: outgoing(include_str!("outgoing_record.lua")),
            outgoing_finish: outgoing(include_str!("outgoing_finish.lua")),
        }
    }
}
