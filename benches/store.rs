//! Criterion benches for the store operations of a packet's two phases, in memory and in a
//! private `redis-server` this bench starts on a free port (skipped if redis-server is missing).
//!
//! Run: `cargo bench --bench store`

use criterion::{criterion_group, criterion_main, Criterion};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thitsax::account::test_account;
use thitsax::store::{MemoryStore, PacketId, RedisConfig, RedisStore, Store};

/// A redis-server on a free port with its own temporary directory, removed on drop.
struct PrivateRedis {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivateRedis {
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("thitsax-bench-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(PrivateRedis { child, dir, port });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prepare then reject (debit, reverse) and prepare then fulfill (debit, commit + credit).
fn phases<S: Store>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: Arc<S>) {
    let source = test_account("bench-source");
    let destination = test_account("bench-destination");
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    let mut g = c.benchmark_group(format!("store/{name}"));
    g.bench_function("prepare_then_reject", |b| {
        b.to_async(rt).iter(|| async {
            let p = PacketId::next();
            store.debit_prepare(&source, 1000, p, expiry).await.unwrap();
            store.reverse_prepare(&source, 1000, p).await.unwrap();
        })
    });
    g.bench_function("prepare_then_fulfill", |b| {
        b.to_async(rt).iter(|| async {
            let p = PacketId::next();
            store.debit_prepare(&source, 1000, p, expiry).await.unwrap();
            let (committed, credited) = tokio::join!(
                store.commit_prepare(&source, 1000, p),
                store.credit_fulfill(&destination, 1000, p)
            );
            committed.unwrap();
            credited.unwrap();
        })
    });
    g.finish();
}

fn stores(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    phases(c, &rt, "memory", Arc::new(MemoryStore::new()));
    let Some(redis) = PrivateRedis::start() else {
        eprintln!("redis-server not found: skipping the Redis store benches");
        return;
    };
    let config = RedisConfig {
        urls: vec![format!("redis://127.0.0.1:{}/", redis.port)],
        cluster: false,
        prefix: "bench".into(),
        response_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        credit_marker_ttl_s: 90_000,
    };
    let store = rt.block_on(RedisStore::connect(&config)).unwrap();
    phases(c, &rt, "redis", Arc::new(store));
}

criterion_group!(benches, stores);
criterion_main!(benches);
