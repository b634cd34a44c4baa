//! Warnings an operator must see, at a rate a log can take: at most one line per key (an account,
//! a remote address) per interval, the next one saying how many were left out meanwhile.
//!
//! A next hop that is down fails every packet sent to it; logging each would flood the log (and
//! cost the packet path a write per packet), logging none leaves the operator blind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One line per account per this long, for a next hop that is down or answers an error.
pub const NEXT_HOP_WARNING_INTERVAL_MS: u64 = 10_000;
/// One line per account or remote address per this long, for a refused incoming token.
pub const REFUSED_TOKEN_WARNING_INTERVAL_MS: u64 = 10_000;
/// Keys remembered at once. Remote addresses are chosen by strangers: past this, stale keys are
/// forgotten and, if none is stale, every new key shares one line ([`OVERFLOW_KEY`]).
pub const KEYS_MAX: usize = 1_024;
/// The key lines are counted under once [`KEYS_MAX`] keys are remembered.
pub const OVERFLOW_KEY: &str = "(others)";

/// Decides, per key, whether a warning is logged now or counted as left out.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    keys: Mutex<HashMap<Box<str>, Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// When a line for this key was last logged.
    logged_at: Instant,
    /// Lines left out since.
    suppressed: u64,
}

/// A line to log now, with the number of lines for its key left out since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    pub suppressed: u64,
}

impl LogLimit {
    pub fn new(interval: Duration) -> Self {
        LogLimit { interval, keys: Mutex::new(HashMap::new()) }
    }

    /// Whether a line for `key` may be logged at `now`: `Some` (with what was left out since the
    /// last one) at most once per interval per key, `None` otherwise (the line is counted).
    pub fn admit(&self, key: &str, now: Instant) -> Option<Admitted> {
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = match keys.contains_key(key) || keys.len() < KEYS_MAX {
            true => key,
            false => {
                let interval = self.interval;
                keys.retain(|_, seen| now.saturating_duration_since(seen.logged_at) < interval);
                if keys.len() < KEYS_MAX {
                    key
                } else {
                    OVERFLOW_KEY
                }
            }
        };
        match keys.get_mut(key) {
            Some(seen) if now.saturating_duration_since(seen.logged_at) < self.interval => {
                seen.suppressed = seen.suppressed.saturating_add(1);
                None
            }
            Some(seen) => {
                let admitted = Admitted { suppressed: seen.suppressed };
                *seen = Seen { logged_at: now, suppressed: 0 };
                Some(admitted)
            }
            None => {
                keys.insert(key.into(), Seen { logged_at: now, suppressed: 0 });
                Some(Admitted { suppressed: 0 })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(NEXT_HOP_WARNING_INTERVAL_MS);

    #[test]
    fn one_line_per_key_per_interval_and_the_next_counts_what_was_left_out() {
        let limit = LogLimit::new(INTERVAL);
        let start = Instant::now();
        assert_eq!(limit.admit("bob", start), Some(Admitted { suppressed: 0 }));
        for i in 1..=5 {
            assert_eq!(limit.admit("bob", start + INTERVAL / 10 * i), None);
        }
        // Just before the interval is over: still left out.
        assert_eq!(
            limit.admit("bob", (start + INTERVAL).checked_sub(Duration::from_millis(1)).unwrap()),
            None
        );
        assert_eq!(limit.admit("bob", start + INTERVAL), Some(Admitted { suppressed: 6 }));
        // The count starts again from the line just logged.
        assert_eq!(limit.admit("bob", start + INTERVAL * 2), Some(Admitted { suppressed: 0 }));
    }

    #[test]
    fn keys_are_limited_apart() {
        let limit = LogLimit::new(INTERVAL);
        let now = Instant::now();
        assert!(limit.admit("bob", now).is_some());
        assert!(limit.admit("carol", now).is_some());
        assert!(limit.admit("bob", now).is_none());
        assert!(limit.admit("carol", now).is_none());
    }

    #[test]
    fn past_the_key_limit_stale_keys_are_forgotten_then_new_keys_share_one_line() {
        let limit = LogLimit::new(INTERVAL);
        let start = Instant::now();
        for i in 0..KEYS_MAX {
            assert!(limit.admit(&format!("10.0.0.{i}"), start).is_some());
        }
        // Every key is fresh: a new one is counted under the overflow key, which logs once.
        assert!(limit.admit("new-1", start).is_some());
        assert!(limit.admit("new-2", start).is_none());
        assert!(limit.admit(OVERFLOW_KEY, start).is_none());
        // Once the others are stale they are forgotten and a new key has its own line again.
        let later = start + INTERVAL;
        assert!(limit.admit("new-3", later).is_some());
        assert!(limit.admit("new-3", later).is_none());
        assert!(limit.keys.lock().unwrap().len() <= 2);
    }
}
