//! Waits between the attempts of a retried action: doubling from a first wait up to a cap, with
//! optional jitter. One type for every retry loop of the node (store writes owed after a
//! Fulfill, settlements and their ends, the owed-writes retrier), so that each loop states only
//! its two bounds and its stop rule.

use std::time::Duration;

/// Exponential backoff: `first`, `2 × first`, … up to `max`, each plus up to a quarter more
/// when jittered (RFC 0038 asks engines' clients for jitter, so that instances retrying
/// together spread out).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    jitter: bool,
}

impl Backoff {
    /// Jittered waits from `first`, doubling up to `max` (`first` above `max` is taken as `max`).
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first.min(max), max, jitter: true }
    }

    /// The same waits, exactly (for loops bounded by a deadline they must not overshoot).
    pub fn exact(first: Duration, max: Duration) -> Self {
        Backoff { jitter: false, ..Backoff::new(first, max) }
    }

    /// The wait before the next attempt, without its jitter (for logs and deadline checks).
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The wait before the next attempt; the one after doubles, up to the cap.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        if self.jitter {
            jittered(wait)
        } else {
            wait
        }
    }
}

/// `wait` plus up to a quarter more, from the OS's random source.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte);
    wait + wait / 4 * u32::from(byte[0]) / 255
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let mut b = Backoff::exact(Duration::from_millis(10), Duration::from_millis(45));
        let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, [10, 20, 40, 45, 45]);
        assert_eq!(
            Backoff::exact(Duration::from_secs(9), Duration::from_secs(1)).peek(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        let mut b = Backoff::new(Duration::from_millis(400), Duration::from_millis(400));
        for _ in 0..200 {
            let wait = b.next_wait();
            assert!(wait >= Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        }
    }
}
