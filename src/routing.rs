//! The routing table: longest-prefix match on whole ILP address segments.
//!
//! The table is immutable. A change builds a new table and swaps it in atomically (`ArcSwap`), so
//! a lookup never sees half an update and never takes a lock. A lookup hashes each segment-boundary
//! prefix of the destination, longest first: its cost grows with the number of segments in the
//! address (a handful), not with the number of routes.

use crate::account::AccountId;
use crate::packet::is_under;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default, Clone)]
pub struct RoutingTable {
    /// Prefix → next-hop account. Prefixes are whole-segment ILP address prefixes.
    prefixes: HashMap<Box<str>, AccountId>,
    /// Where anything else goes (the parent), if anywhere.
    default: Option<AccountId>,
}

impl RoutingTable {
    pub fn new(routes: impl IntoIterator<Item = (String, AccountId)>, default: Option<AccountId>) -> Self {
        let prefixes = routes.into_iter().map(|(p, a)| (p.into_boxed_str(), a)).collect();
        RoutingTable { prefixes, default }
    }

    /// The next hop for `destination`: the longest configured prefix that `destination` lies
    /// under on a segment boundary, else the default route.
    pub fn lookup(&self, destination: &str) -> Option<&AccountId> {
        let mut candidate = destination;
        loop {
            if let Some(next) = self.prefixes.get(candidate) {
                debug_assert!(is_under(destination, candidate));
                return Some(next);
            }
            match candidate.rfind('.') {
                Some(dot) => candidate = &candidate[..dot],
                None => return self.default.as_ref(),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Every prefix and its next hop, in no order (for the admin API, never per packet).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &AccountId)> {
        self.prefixes.iter().map(|(prefix, account)| (&**prefix, account))
    }

    /// Where destinations under no prefix go.
    pub fn default_route(&self) -> Option<&AccountId> {
        self.default.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

/// The live table, replaced as a whole.
#[derive(Debug)]
pub struct Router(ArcSwap<RoutingTable>);

impl Router {
    pub fn new(table: RoutingTable) -> Self {
        Router(ArcSwap::from_pointee(table))
    }

    /// A consistent snapshot for one packet.
    pub fn table(&self) -> arc_swap::Guard<Arc<RoutingTable>> {
        self.0.load()
    }

    pub fn replace(&self, table: RoutingTable) {
        self.0.store(Arc::new(table));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)], default: Option<&str>) -> RoutingTable {
        RoutingTable::new(
            routes.iter().map(|(p, a)| (p.to_string(), AccountId::from(*a))),
            default.map(Into::into),
        )
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[("g.a", "one"), ("g.a.b", "two")], None);
        assert_eq!(t.lookup("g.a.b.c").map(|a| &**a), Some("two"));
        assert_eq!(t.lookup("g.a.c").map(|a| &**a), Some("one"));
        assert_eq!(t.lookup("g.a").map(|a| &**a), Some("one"));
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        let t = table(&[("g.alice", "alice")], None);
        assert_eq!(t.lookup("g.alicebob"), None);
        assert_eq!(t.lookup("g.alice.x").map(|a| &**a), Some("alice"));
    }

    #[test]
    fn default_route_catches_the_rest() {
        let t = table(&[("g.alice", "alice")], Some("parent"));
        assert_eq!(t.lookup("g.zed").map(|a| &**a), Some("parent"));
        assert_eq!(t.lookup("private.x").map(|a| &**a), Some("parent"));
    }

    #[test]
    fn lookup_does_not_scan_every_route() {
        // 100k routes: a lookup still hashes only the destination's own prefixes.
        let routes: Vec<(String, AccountId)> =
            (0..100_000).map(|i| (format!("g.n{i}"), AccountId::from("x"))).collect();
        let t = RoutingTable::new(routes, None);
        assert_eq!(t.len(), 100_000);
        assert_eq!(t.lookup("g.n99999.sub.deeper").map(|a| &**a), Some("x"));
        assert_eq!(t.lookup("g.m1"), None);
    }

    #[test]
    fn router_swaps_whole_tables() {
        let r = Router::new(table(&[("g.a", "one")], None));
        let before = r.table();
        r.replace(table(&[("g.a", "two")], None));
        assert_eq!(before.lookup("g.a").map(|a| &**a), Some("one"));
        assert_eq!(r.table().lookup("g.a").map(|a| &**a), Some("two"));
    }
}
