//! The rate probe's schedule: which unfulfillable test packets to send, and when it is over.
//!
//! As @interledger/pay does, the probe sends a burst of amounts at once: 0 (which carries the
//! connection's frames and asks for the receiver's asset details), then powers of ten from
//! [`PROBE_AMOUNT_MAX`] down to 1, and never more than the payment could send (a node reserves a
//! Prepare's amount from the sender's balance even when it cannot be fulfilled). Each authentic
//! reply narrows the rate; an F08 lowers the path's limit, and the new limit is probed in turn,
//! so a second hop with a lower limit answers F08 too. The probe is over when nothing is queued or
//! in flight.
//!
//! Temporary failures (T and R codes, replies nobody could authenticate) are retried only where
//! they matter: the probe of a limit an F08 taught (it checks the path carries it), or any amount
//! while no rate is known at all. The other amounts are redundant, and dropped; so are amounts a
//! hop rounds down to nothing (R01), and amounts over the sender's credit (T04 from its own node)
//! once a smaller one has told the rate.

use super::max_packet::MaxPacket;
use std::collections::{BTreeSet, VecDeque};

/// The largest test amount: 10^12, pay's too. Larger amounts add no precision worth a
/// reservation on the sender's balance.
pub const PROBE_AMOUNT_MAX: u64 = 1_000_000_000_000;

/// What the probe does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Send(u64),
    /// Replies are awaited.
    Wait,
    /// Nothing queued, nothing in flight.
    Done,
}

/// What a probe's reply was, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered (its reply decrypted): the path carried this amount.
    Authentic,
    /// F08, and the limit it taught, when it went down.
    TooLarge(Option<u64>),
    /// A failure that says nothing of the amount (T or R code, an unreadable F99, no answer).
    Temporary,
    /// R01: a hop rounds the amount down to nothing; sending it again cannot help.
    TooSmall,
}

#[derive(Debug)]
pub struct Probe {
    queue: VecDeque<u64>,
    /// Every amount queued so far: a limit learned twice is probed once.
    queued: BTreeSet<u64>,
    /// The limit an F08 taught, until the path was seen to carry it.
    unverified_limit: Option<u64>,
    in_flight: usize,
    /// Probe Prepares sent, retries included.
    sent: u32,
}

impl Probe {
    /// The schedule for a payment that can send at most `cap` (in source units).
    pub fn new(cap: u64) -> Probe {
        let cap = cap.min(PROBE_AMOUNT_MAX);
        let mut amounts = vec![0, cap];
        amounts.extend((0..=12).rev().map(|k| 10u64.pow(k)).filter(|&a| a < cap));
        let mut probe = Probe {
            queue: VecDeque::new(),
            queued: BTreeSet::new(),
            unverified_limit: None,
            in_flight: 0,
            sent: 0,
        };
        for amount in amounts {
            if probe.queued.insert(amount) {
                probe.queue.push_back(amount);
            }
        }
        probe
    }

    /// The next test amount, at most `attempts_max` in all. Amounts above the path's limit are
    /// dropped: they would only be refused again.
    pub fn next(&mut self, max_packet: &MaxPacket, attempts_max: u32) -> Step {
        if self.sent >= attempts_max {
            self.queue.clear();
        }
        while let Some(amount) = self.queue.pop_front() {
            if amount > max_packet.limit() {
                continue;
            }
            self.sent += 1;
            self.in_flight += 1;
            return Step::Send(amount);
        }
        if self.in_flight > 0 {
            Step::Wait
        } else {
            Step::Done
        }
    }

    /// Takes a reply to the test packet of `amount` into account; `rate_known` says whether any
    /// reply so far told a rate. True when the amount is queued again (after a backoff).
    pub fn answered(&mut self, amount: u64, answer: Answer, rate_known: bool) -> bool {
        debug_assert!(self.in_flight > 0, "a reply to a probe that was not sent");
        self.in_flight = self.in_flight.saturating_sub(1);
        match answer {
            Answer::Authentic => {
                if self.unverified_limit == Some(amount) {
                    self.unverified_limit = None;
                }
            }
            Answer::TooLarge(Some(limit)) => {
                self.unverified_limit = Some(limit);
                if self.queued.insert(limit) {
                    self.queue.push_front(limit);
                }
            }
            Answer::TooLarge(None) | Answer::TooSmall => {}
            Answer::Temporary => {
                if self.unverified_limit == Some(amount) || !rate_known {
                    self.queue.push_back(amount);
                    return true;
                }
            }
        }
        false
    }

    /// Probe Prepares sent so far.
    #[cfg(test)]
    pub fn sent(&self) -> u32 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::amount_too_large_data;

    fn drain(probe: &mut Probe, max: &MaxPacket) -> Vec<u64> {
        let mut out = Vec::new();
        while let Step::Send(a) = probe.next(max, 100) {
            out.push(a);
        }
        out
    }

    #[test]
    fn the_burst_is_zero_then_powers_of_ten_under_the_cap() {
        let all = drain(&mut Probe::new(u64::MAX), &MaxPacket::default());
        assert_eq!(all[..3], [0, 1_000_000_000_000, 100_000_000_000]);
        assert_eq!(all.len(), 14);
        assert_eq!(*all.last().unwrap(), 1);
        assert_eq!(
            drain(&mut Probe::new(12_345), &MaxPacket::default()),
            [0, 12_345, 10_000, 1000, 100, 10, 1]
        );
        assert_eq!(drain(&mut Probe::new(1000), &MaxPacket::default()), [0, 1000, 100, 10, 1]);
        assert_eq!(drain(&mut Probe::new(1), &MaxPacket::default()), [0, 1]);
    }

    #[test]
    fn a_learned_limit_is_probed_next_and_retried_until_carried() {
        let mut probe = Probe::new(10_000);
        let mut max = MaxPacket::default();
        assert_eq!(probe.next(&max, 100), Step::Send(0));
        assert_eq!(probe.next(&max, 100), Step::Send(10_000));
        probe.answered(0, Answer::Authentic, false);
        let limit = max.reduce(10_000, &amount_too_large_data(10_000, 700)).unwrap();
        probe.answered(10_000, Answer::TooLarge(limit), false);
        assert_eq!(probe.next(&max, 100), Step::Send(700));
        assert!(probe.answered(700, Answer::Temporary, true), "the limit is retried");
        // 1000 is above the limit now: dropped; the limit's retry waits behind the rest.
        assert_eq!(drain(&mut probe, &max), [100, 10, 1, 700]);
        for a in [100, 10, 1] {
            probe.answered(a, Answer::Temporary, true);
        }
        assert_eq!(probe.next(&max, 100), Step::Wait);
        probe.answered(700, Answer::Authentic, true);
        assert_eq!(probe.next(&max, 100), Step::Done);
    }

    #[test]
    fn temporary_failures_are_retried_only_while_no_rate_is_known() {
        let mut probe = Probe::new(100);
        let max = MaxPacket::default();
        assert_eq!(drain(&mut probe, &max), [0, 100, 10, 1]);
        assert!(probe.answered(100, Answer::Temporary, false));
        probe.answered(10, Answer::Authentic, false);
        assert!(!probe.answered(1, Answer::Temporary, true));
        probe.answered(0, Answer::Authentic, true);
        assert_eq!(drain(&mut probe, &max), [100]);
        probe.answered(100, Answer::Temporary, true);
        assert_eq!(probe.next(&max, 100), Step::Done);
    }

    #[test]
    fn the_attempts_bound_ends_the_probe() {
        let mut probe = Probe::new(u64::MAX);
        let max = MaxPacket::default();
        assert_eq!(probe.next(&max, 2), Step::Send(0));
        assert_eq!(probe.next(&max, 2), Step::Send(PROBE_AMOUNT_MAX));
        assert_eq!(probe.next(&max, 2), Step::Wait);
        probe.answered(0, Answer::Temporary, false);
        probe.answered(PROBE_AMOUNT_MAX, Answer::Temporary, false);
        assert_eq!(probe.next(&max, 2), Step::Done);
        assert_eq!(probe.sent(), 2);
    }
}
