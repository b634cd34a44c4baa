//! Loopback ports for `mojaloop`'s child processes (the Connectors, their Redis, the ThitsaX
//! nodes), which must be named in their environment or config before they bind them.
//!
//! The rule of `tests/common/ports.rs`, compactly: a port is picked at random above 10000 and
//! outside the kernel's ephemeral range (where every `bind(:0)` and outgoing connection gets
//! its port, so no socket the kernel numbers can take it in the meantime), never 6379 (the
//! machine's shared Redis), free when checked, and claimed until this process exits with an
//! exclusive `flock` on `$TMPDIR/thitsax-test-ports/<port>.lock`: the directory the tests
//! claim theirs in, so a test run on the same machine and this tool never pick the same port.
//! The kernel drops the locks when the process dies, even by SIGKILL.
//!
//! The tool's own in-process listeners (backends, timing proxy) bind `127.0.0.1:0` instead: they
//! hold their port from the start.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The machine's shared Redis: never handed out.
const SHARED_REDIS_PORT: u16 = 6379;
/// Lowest port handed out (below are the well-known and registered services).
const PORT_FLOOR: u16 = 10_000;
/// Random picks before giving up: the range holds tens of thousands of ports.
const PICKS_MAX: usize = 2_000;

/// The ports this process claimed, each with the open lock file that keeps the claim.
#[derive(Default)]
pub(crate) struct Ports {
    claimed: Mutex<Vec<(u16, File)>>,
}

impl Ports {
    /// A loopback port free now and claimed for the rest of this process.
    pub(crate) fn claim(&self) -> Result<u16, String> {
        let (low, high) = ephemeral_range();
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..PICKS_MAX {
            let port = random_port()?;
            if port == SHARED_REDIS_PORT
                || (low..=high).contains(&port)
                || claimed.iter().any(|(p, _)| *p == port)
            {
                continue;
            }
            let Some(file) = lock(port)? else { continue };
            // Held by something that does not claim ports this way: leave it (the lock drops).
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                continue;
            }
            claimed.push((port, file));
            return Ok(port);
        }
        Err(format!(
            "no loopback port could be claimed in {PORT_FLOOR}-65535 outside the ephemeral range {low}-{high}"
        ))
    }
}

/// The kernel's ephemeral port range, inclusive.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

fn random_port() -> Result<u16, String> {
    let mut b = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| "no random bytes".to_string())?;
    Ok(PORT_FLOOR + u16::from_be_bytes(b) % (u16::MAX - PORT_FLOOR))
}

/// The port's lock file, locked; `None` when another process holds the claim.
fn lock(port: u16) -> Result<Option<File>, String> {
    let dir = std::env::temp_dir().join("thitsax-test-ports");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{port}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    Ok(rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok().map(|()| file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let ports = Ports::default();
        let (low, high) = ephemeral_range();
        let mut got: Vec<u16> = (0..20).map(|_| ports.claim().unwrap()).collect();
        for p in &got {
            assert!(*p >= PORT_FLOOR && *p != SHARED_REDIS_PORT && !(low..=high).contains(p), "{p}");
            // Claimed: a second claimer (another process would open its own file) is refused.
            assert!(lock(*p).unwrap().is_none(), "{p} is not locked");
        }
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 20);
    }
}
