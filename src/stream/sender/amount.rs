//! How much the next money packet carries, and the payment's totals.
//!
//! Two kinds of payment (@interledger/pay's fixed send and fixed delivery):
//! - **an exact source amount** `s`: the packets' source amounts add up to `s`, never more, even
//!   if every packet in flight is fulfilled (the in-flight amounts count against `s`); what is
//!   left is spread evenly over the packets the path's limit needs, so no last packet is dust;
//! - **an exact delivered amount** `d`: no packet is sent that could take the delivered total past
//!   `d` while the rate stays within its bounds (each packet in flight counts as the most it may
//!   deliver), so the packets shrink as the total nears `d` and the last ones are sized from the
//!   bounds to deliver exactly what is left. When even one source unit could deliver more than
//!   what is left, `d` cannot be met exactly: the payment stops there, short, rather than over.
//!
//! Each packet's minimum (its STREAM `prepare_amount`) is `floor(source × rate × (1 −
//! slippage))`, with the rate's lower bound from the probe: a receiver refuses a packet that
//! delivers less, so a rate that fell past the slippage bound costs no money. A packet is not
//! sent when the rate's current lower bound already says it would fall short.

use super::rate::{floor_after_slippage, RateBounds, Ratio};
use super::{Amount, Progress, StopReason};

/// What the amounts say to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A money packet: its source amount, its minimum, and the most it may deliver.
    Send {
        source: u64,
        min: u64,
        high: u64,
    },
    /// Wait for the packets in flight.
    Wait,
    Stop(StopReason),
}

/// The payment's target, totals and money in flight.
#[derive(Debug)]
pub struct Amounts {
    target: Amount,
    totals: Progress,
    /// Sums over the money packets in flight (`u128`: several `u64`s).
    in_flight_source: u128,
    in_flight_high: u128,
    in_flight: usize,
    /// What the receiver will still take on the stream, in its units: its latest
    /// `StreamMaxMoney`, less what was delivered since. `None`: no limit told.
    capacity: Option<u64>,
}

impl Amounts {
    /// A payment of `target`, resumed from `progress` (an earlier run's totals).
    pub fn new(target: Amount, progress: Progress) -> Amounts {
        Amounts {
            target,
            totals: progress,
            in_flight_source: 0,
            in_flight_high: 0,
            in_flight: 0,
            capacity: None,
        }
    }

    pub fn totals(&self) -> Progress {
        self.totals
    }

    pub fn is_complete(&self) -> bool {
        match self.target {
            Amount::Source(s) => self.totals.sent >= s,
            Amount::Delivered(d) => self.totals.delivered >= d,
        }
    }

    /// The most a test packet may carry: what is left of a source amount (a node reserves even
    /// a test packet's amount), or no limit for a delivered amount.
    pub fn probe_cap(&self) -> u64 {
        match self.target {
            Amount::Source(s) => s.saturating_sub(self.totals.sent),
            Amount::Delivered(_) => u64::MAX,
        }
    }

    pub fn is_delivery(&self) -> bool {
        matches!(self.target, Amount::Delivered(_))
    }

    /// The next money packet. `min_rate` is the probe's lower bound, `slippage` a fraction.
    pub fn next(&self, rate: &RateBounds, max_packet: u64, min_rate: &Ratio, slippage: (u64, u64)) -> Step {
        let idle = self.in_flight == 0;
        if self.is_complete() {
            return if idle { Step::Stop(StopReason::Completed) } else { Step::Wait };
        }
        let source = match self.target {
            Amount::Source(s) => {
                let available = u128::from(s - self.totals.sent).saturating_sub(self.in_flight_source);
                // available <= s: it fits a u64.
                let available = u64::try_from(available).unwrap_or(0);
                if available == 0 {
                    return Step::Wait;
                }
                // As many packets as the limit needs, evenly: the last is not a remainder so
                // small that a hop rounds it down to nothing (R01).
                let packets = available.div_ceil(max_packet.max(1));
                let mut source = available.div_ceil(packets);
                if let Some(room) = self.room() {
                    source = source.min(rate.source_for_at_most(room));
                }
                source
            }
            Amount::Delivered(d) => {
                let left = d - self.totals.delivered;
                if self.capacity.is_some_and(|c| c < left) && idle {
                    let receivable = self.capacity.unwrap_or(0);
                    return Step::Stop(StopReason::ReceiveMax { receivable });
                }
                let unclaimed = u128::from(left).saturating_sub(self.in_flight_high);
                let mut budget = u64::try_from(unclaimed).unwrap_or(0);
                if let Some(room) = self.room() {
                    budget = budget.min(room);
                }
                if budget == 0 {
                    return Step::Wait;
                }
                let source = max_packet.min(rate.source_for_at_most(budget));
                if source == 0 {
                    // Even one unit could deliver more than what is left. The bounds cannot be
                    // loose at one unit: they lie within one packet's [d/s, (d+1)/s), which holds
                    // no whole number strictly inside, so least and most of one unit are equal.
                    return if idle {
                        Step::Stop(StopReason::RemainderUnreachable { remaining: left })
                    } else {
                        Step::Wait
                    };
                }
                source
            }
        };
        if source == 0 {
            // Only the receiver's capacity can leave nothing to send.
            return if idle {
                Step::Stop(StopReason::ReceiveMax { receivable: self.capacity.unwrap_or(0) })
            } else {
                Step::Wait
            };
        }
        let min = floor_after_slippage(source, min_rate, slippage);
        if rate.least_delivered(source) < min {
            return Step::Stop(StopReason::InsufficientExchangeRate);
        }
        Step::Send { source, min, high: rate.most_delivered(source) }
    }

    /// The receiver's capacity not yet claimed by packets in flight, when it told one.
    fn room(&self) -> Option<u64> {
        let capacity = self.capacity?;
        Some(u64::try_from(u128::from(capacity).saturating_sub(self.in_flight_high)).unwrap_or(0))
    }

    /// A money packet left.
    pub fn launched(&mut self, source: u64, high: u64) {
        self.in_flight += 1;
        self.in_flight_source += u128::from(source);
        self.in_flight_high += u128::from(high);
    }

    /// A money packet came back, or will never be known: it is no longer in flight.
    pub fn released(&mut self, source: u64, high: u64) {
        debug_assert!(self.in_flight > 0);
        self.in_flight = self.in_flight.saturating_sub(1);
        self.in_flight_source = self.in_flight_source.saturating_sub(u128::from(source));
        self.in_flight_high = self.in_flight_high.saturating_sub(u128::from(high));
    }

    /// Adds a fulfilled packet to the totals (any packet: a test packet fulfilled by mistake
    /// moved money too). Totals saturate rather than wrap: no balance holds more than `u64::MAX`.
    pub fn paid(&mut self, source: u64, delivered: u64) {
        self.totals.sent = self.totals.sent.saturating_add(source);
        self.totals.delivered = self.totals.delivered.saturating_add(delivered);
        if let Some(capacity) = self.capacity.as_mut() {
            *capacity = capacity.saturating_sub(delivered);
        }
    }

    /// The receiver's `StreamMaxMoney` for our stream: it takes `receive_max` in all and has
    /// `total_received` (its totals include the packet it answers).
    pub fn receive_max(&mut self, receive_max: u64, total_received: u64) {
        self.capacity = Some(receive_max.saturating_sub(total_received));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_SLIPPAGE: (u64, u64) = (0, 1);

    fn rate(observations: &[(u64, u64)]) -> RateBounds {
        let mut b = RateBounds::default();
        for &(s, d) in observations {
            b.observe(s, d);
        }
        b
    }

    #[test]
    fn a_source_amount_is_spread_under_the_max_packet_and_never_exceeded_in_flight() {
        let r = rate(&[(1000, 1000)]);
        let mut a = Amounts::new(Amount::Source(2500), Progress::default());
        let next = |a: &Amounts| a.next(&r, 1000, &r.lower(), NO_SLIPPAGE);
        // Three packets are needed: 834, 833, 833 rather than 1000, 1000, 500.
        assert_eq!(next(&a), Step::Send { source: 834, min: 834, high: 834 });
        a.launched(834, 834);
        assert_eq!(next(&a), Step::Send { source: 833, min: 833, high: 833 });
        a.launched(833, 833);
        assert_eq!(next(&a), Step::Send { source: 833, min: 833, high: 833 });
        a.launched(833, 833);
        assert_eq!(next(&a), Step::Wait);
        a.released(834, 834);
        assert_eq!(next(&a), Step::Send { source: 834, min: 834, high: 834 });
        // No limit known: one packet.
        let whole = Amounts::new(Amount::Source(2500), Progress::default());
        assert_eq!(
            whole.next(&r, u64::MAX, &r.lower(), NO_SLIPPAGE),
            Step::Send { source: 2500, min: 2500, high: 2502 },
            "at most ceil(2500 × 1001/1000) − 1"
        );
    }

    #[test]
    fn a_delivered_amount_shrinks_the_last_packets_to_what_is_left() {
        // 10^9 source → 1818 (18.18 MXN per USD, scale 9 to scale 2), bounds from two probes.
        let r = rate(&[(1_000_000_000_000, 1_818_000), (1_000_000_000, 1818)]);
        let mut a = Amounts::new(Amount::Delivered(2000), Progress::default());
        let Step::Send { source, high, .. } = a.next(&r, u64::MAX, &r.lower(), NO_SLIPPAGE) else { panic!() };
        assert!(high <= 2000, "{high}");
        assert_eq!(r.least_delivered(source), 2000);
        // 1999 delivered: what is left is one cent, and the packet for it can deliver no more.
        a.paid(source, 1999);
        let Step::Send { source, high, min } = a.next(&r, u64::MAX, &r.lower(), NO_SLIPPAGE) else {
            panic!()
        };
        assert_eq!((high, min), (1, 1));
        assert_eq!(source, 1_100_109, "floor(2 / (1818001 / 10^12))");
    }

    #[test]
    fn a_remainder_one_source_unit_overshoots_is_unreachable() {
        // 1 MXN cent → 550_055 USD nano-units, known exactly.
        let r = rate(&[(1, 550_055), (1000, 550_055_005)]);
        let mut a = Amounts::new(Amount::Delivered(600_000), Progress::default());
        assert_eq!(
            a.next(&r, u64::MAX, &r.lower(), NO_SLIPPAGE),
            Step::Send { source: 1, min: 550_055, high: 550_055 }
        );
        a.paid(1, 550_055);
        assert_eq!(
            a.next(&r, u64::MAX, &r.lower(), NO_SLIPPAGE),
            Step::Stop(StopReason::RemainderUnreachable { remaining: 49_945 })
        );
        // With only a larger packet seen, one unit is still known exactly (550_055.005 per unit).
        let coarse = rate(&[(1000, 550_055_005)]);
        assert_eq!(coarse.least_delivered(1), coarse.most_delivered(1));
    }

    #[test]
    fn a_rate_below_the_slippage_bound_stops_before_sending() {
        let probed = rate(&[(1000, 1000)]);
        let fallen = rate(&[(1000, 900)]);
        let a = Amounts::new(Amount::Source(5000), Progress::default());
        let step = a.next(&fallen, 1000, &probed.lower(), (5, 100));
        assert_eq!(step, Step::Stop(StopReason::InsufficientExchangeRate));
        // Within 10 %: fine, and the minimum is the probed rate less the slippage.
        assert_eq!(
            a.next(&fallen, 1000, &probed.lower(), (10, 100)),
            Step::Send { source: 1000, min: 900, high: 900 }
        );
    }

    #[test]
    fn the_receivers_capacity_bounds_both_kinds() {
        let r = rate(&[(1000, 1000)]);
        let mut a = Amounts::new(Amount::Source(5000), Progress::default());
        a.receive_max(1500, 1000);
        assert_eq!(
            a.next(&r, 5000, &r.lower(), NO_SLIPPAGE),
            Step::Send { source: 500, min: 500, high: 500 }
        );
        a.paid(500, 500);
        assert_eq!(
            a.next(&r, 5000, &r.lower(), NO_SLIPPAGE),
            Step::Stop(StopReason::ReceiveMax { receivable: 0 })
        );
        let mut d = Amounts::new(Amount::Delivered(900), Progress::default());
        d.receive_max(1000, 200);
        assert_eq!(
            d.next(&r, 5000, &r.lower(), NO_SLIPPAGE),
            Step::Stop(StopReason::ReceiveMax { receivable: 800 })
        );
    }

    #[test]
    fn resumed_progress_counts_and_a_finished_payment_stops() {
        let r = rate(&[(1000, 1000)]);
        let a = Amounts::new(Amount::Source(5000), Progress { sent: 4200, delivered: 4200 });
        assert_eq!(a.probe_cap(), 800);
        assert_eq!(
            a.next(&r, 5000, &r.lower(), NO_SLIPPAGE),
            Step::Send { source: 800, min: 800, high: 800 }
        );
        let done = Amounts::new(Amount::Delivered(10), Progress { sent: 10, delivered: 10 });
        assert!(done.is_complete());
        assert_eq!(done.next(&r, 5000, &r.lower(), NO_SLIPPAGE), Step::Stop(StopReason::Completed));
    }
}
