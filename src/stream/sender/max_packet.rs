//! The largest packet the path carries, in source units, learned from F08 Rejects.
//!
//! An F08's data (RFC 0027) is the amount the rejecting hop received and its maximum, two
//! big-endian `u64`s, in that hop's units. The packet's own source amount relates the two: the hop
//! saw `received` for our `sent`, so its maximum is worth `floor(maximum × sent / received)` of
//! ours (rounded down: a packet of that size arrives at or under the hop's maximum). An F08
//! without that data only says the packet was too large; the next limit is then one unit less,
//! and probing narrows it down from there.

/// F08 data: `received ‖ maximum`.
const F08_DATA_BYTES: usize = 16;

/// Why the path takes nothing at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoCapacity;

/// The path's limit on one packet, in source units.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxPacket {
    /// `None` until an F08 said otherwise: no limit known.
    limit: Option<u64>,
}

impl MaxPacket {
    /// The most a packet may carry now (`u64::MAX` when no F08 was seen).
    pub fn limit(&self) -> u64 {
        self.limit.unwrap_or(u64::MAX)
    }

    /// The limit an F08 taught, if any.
    pub fn learned(&self) -> Option<u64> {
        self.limit
    }

    /// Lowers the limit after an F08 to a packet of `sent`, with the Reject's `data`. Returns the
    /// new limit when it went down; an F08 that would raise it changes nothing. Invariant: the
    /// limit only ever goes down, and is at least one.
    pub fn reduce(&mut self, sent: u64, data: &[u8]) -> Result<Option<u64>, NoCapacity> {
        let new = match read_f08(data) {
            // A hop that received at most its own maximum should not have refused: its data
            // says nothing, so only the bare code is used.
            Some((received, maximum)) if received > maximum => {
                // maximum < received, so the result is below `sent`: it fits a u64.
                let scaled = u128::from(maximum) * u128::from(sent) / u128::from(received);
                u64::try_from(scaled).unwrap_or(u64::MAX)
            }
            _ => sent.saturating_sub(1),
        };
        if new == 0 {
            return Err(NoCapacity);
        }
        if self.limit.is_some_and(|old| new >= old) {
            return Ok(None);
        }
        self.limit = Some(new);
        Ok(Some(new))
    }
}

/// `(received, maximum)` from an F08's data, when it has the RFC's 16 bytes (longer data keeps
/// them in front, as the reference reads it).
fn read_f08(data: &[u8]) -> Option<(u64, u64)> {
    let head = data.get(..F08_DATA_BYTES)?;
    let received = u64::from_be_bytes(head[..8].try_into().ok()?);
    let maximum = u64::from_be_bytes(head[8..].try_into().ok()?);
    Some((received, maximum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::amount_too_large_data;

    #[test]
    fn an_f08_scales_the_hops_maximum_back_to_source_units() {
        let mut m = MaxPacket::default();
        assert_eq!(m.limit(), u64::MAX);
        // 10^12 source units arrived as 1_818_181 at the hop, whose maximum is 100_000.
        let data = amount_too_large_data(1_818_181, 100_000);
        assert_eq!(m.reduce(1_000_000_000_000, &data), Ok(Some(55_000_024_750)), "floor(10^17 / 1_818_181)");
        // A same-currency hop: exact.
        let mut same = MaxPacket::default();
        assert_eq!(same.reduce(5000, &amount_too_large_data(5000, 1000)), Ok(Some(1000)));
    }

    #[test]
    fn the_limit_only_goes_down() {
        let mut m = MaxPacket::default();
        m.reduce(5000, &amount_too_large_data(5000, 1000)).unwrap();
        assert_eq!(m.reduce(5000, &amount_too_large_data(5000, 2000)), Ok(None));
        assert_eq!(m.limit(), 1000);
        assert_eq!(m.reduce(1000, &amount_too_large_data(1000, 999)), Ok(Some(999)));
    }

    #[test]
    fn an_f08_without_usable_data_takes_one_unit_off() {
        let mut m = MaxPacket::default();
        assert_eq!(m.reduce(700, b""), Ok(Some(699)));
        // received <= maximum: the data is ignored.
        assert_eq!(m.reduce(699, &amount_too_large_data(10, 10)), Ok(Some(698)));
        assert_eq!(m.reduce(1, b""), Err(NoCapacity));
        // A hop whose maximum is zero takes nothing.
        assert_eq!(MaxPacket::default().reduce(10, &amount_too_large_data(10, 0)), Err(NoCapacity));
    }

    #[test]
    fn extreme_f08_data_stays_in_range() {
        let mut m = MaxPacket::default();
        let data = amount_too_large_data(u64::MAX, u64::MAX - 1);
        assert_eq!(m.reduce(u64::MAX, &data), Ok(Some(u64::MAX - 1)));
        // Rounds down: 1 of a hop's maximum 1 over 3 received is a third of a unit of ours.
        assert_eq!(MaxPacket::default().reduce(2, &amount_too_large_data(3, 1)), Err(NoCapacity));
    }
}
