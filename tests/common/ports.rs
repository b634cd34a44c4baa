//! Loopback ports for the tests' own listeners that must be named before they are bound: a
//! `redis-server` (and its cluster bus), a node whose address a config names.
//!
//! A port handed out here is claimed until the test process exits, so nothing else this harness
//! serves can take it, even while its listener is down (a Redis stopped for a restart):
//! - within one test process, a port is never handed out twice;
//! - across test processes (other test binaries, other checkouts' test runs on the machine),
//!   each claim holds an exclusive `flock` on `$TMPDIR/thitsax-test-ports/<port>.lock`; the
//!   kernel drops it when the process dies, even by SIGKILL, so no claim outlives its process;
//! - ports are picked outside the kernel's ephemeral range (`ip_local_port_range`), where every
//!   `bind(:0)` and every outgoing connection gets its port, so no socket the kernel numbers can
//!   take one either (not even a reconnecting client connected to itself).
//!
//! Only a process outside these tests that binds a fixed port in the range could still take one:
//! the Redis harness then refuses to use it (it checks the server's `process_id`).

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Mutex;

/// The machine's shared Redis: never handed out.
const SHARED_REDIS_PORT: u16 = 6379;
/// Lowest port handed out (below are the well-known and registered services people run).
const PORT_FLOOR: u16 = 10_000;
/// Random picks before giving up: the range holds tens of thousands of ports.
const PICKS_MAX: usize = 2_000;

/// Every port this process has claimed, with the open lock file that keeps the claim: kept until
/// the process exits, never reused.
static CLAIMED: Mutex<Vec<(u16, File)>> = Mutex::new(Vec::new());

/// The kernel's ephemeral port range (what `bind(:0)` and outgoing connections use), inclusive.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

fn outside_ephemeral_range(port: u16) -> bool {
    let (low, high) = ephemeral_range();
    port < low || port > high
}

fn lock_path(port: u16) -> PathBuf {
    std::env::temp_dir().join("thitsax-test-ports").join(format!("{port}.lock"))
}

/// The port's lock file, locked by the caller; `None` if another process holds the claim.
fn lock(port: u16) -> Option<File> {
    let path = lock_path(port);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    // A fresh open file description: locked by us or by another process, this fails alike.
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(file)
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

/// Whether `port` could be claimed now: in the range handed out, never claimed by this process,
/// not claimed by another, and free. Claims nothing.
pub fn available(port: u16) -> bool {
    port >= PORT_FLOOR
        && port != SHARED_REDIS_PORT
        && outside_ephemeral_range(port)
        && !CLAIMED.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(p, _)| *p == port)
        && lock(port).is_some()
        && bindable(port)
}

/// Claims `port` for the rest of this process if [`available`]; `false` otherwise.
fn try_claim(port: u16) -> bool {
    if port < PORT_FLOOR || port == SHARED_REDIS_PORT || !outside_ephemeral_range(port) {
        return false;
    }
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    if claimed.iter().any(|(p, _)| *p == port) {
        return false;
    }
    let Some(file) = lock(port) else { return false };
    if !bindable(port) {
        // Held by something outside this harness: leave it (dropping the file unlocks it).
        return false;
    }
    claimed.push((port, file));
    true
}

fn random_port() -> u16 {
    let mut b = [0u8; 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("random bytes");
    PORT_FLOOR + u16::from_be_bytes(b) % (u16::MAX - PORT_FLOOR)
}

/// A loopback port claimed for this process (see the module doc): free now, and handed to no
/// one else until the process exits.
pub fn claim() -> u16 {
    claim_with_offset(None)
}

/// A port claimed together with `port + offset` (a Redis Cluster node's bus port); both free.
/// The port is claimed first: if its partner cannot be, it stays claimed unused.
pub fn claim_pair(offset: u16) -> u16 {
    claim_with_offset(Some(offset))
}

fn claim_with_offset(offset: Option<u16>) -> u16 {
    for _ in 0..PICKS_MAX {
        let port = random_port();
        let partner = match offset {
            None => None,
            Some(offset) => match port.checked_add(offset) {
                Some(partner) if available(partner) => Some(partner),
                _ => continue,
            },
        };
        if try_claim(port) && partner.is_none_or(try_claim) {
            return port;
        }
    }
    let (low, high) = ephemeral_range();
    panic!(
        "no loopback port could be claimed in {PORT_FLOOR}-65535 outside the ephemeral range \
         {low}-{high} after {PICKS_MAX} picks"
    );
}
