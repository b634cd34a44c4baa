//! Self-tests of the real-Redis test harness (tests/common/redis.rs): servers and clusters start,
//! answer, survive restarts as configured, and leave no process or directory behind.

mod common;

use common::redis::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What must be gone once a server or cluster is dropped.
struct Footprint {
    ports: Vec<u16>,
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

impl Footprint {
    fn of(servers: &[&RedisServer]) -> Footprint {
        Footprint {
            ports: servers.iter().map(|s| s.port()).collect(),
            pids: servers.iter().map(|s| s.pid().expect("running")).collect(),
            dirs: servers.iter().map(|s| s.dir().to_path_buf()).collect(),
        }
    }

    fn assert_gone(&self) {
        assert_no_redis_on_ports(&self.ports);
        for pid in &self.pids {
            assert!(!Path::new(&format!("/proc/{pid}")).exists(), "redis-server pid {pid} still exists");
        }
        for dir in &self.dirs {
            assert!(!dir.exists(), "{} not removed", dir.display());
            let guards = pids_mentioning(&dir.to_string_lossy());
            assert!(guards.is_empty(), "processes still name {}: {guards:?}", dir.display());
        }
    }
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    let reply = server.cmd(&["GET", key]);
    assert!(!matches!(reply, Resp::Error(_)), "GET {key}: {reply:?}");
    reply.text()
}

fn set(server: &RedisServer, key: &str, value: &str) {
    let reply = server.cmd(&["SET", key, value]);
    assert!(reply.is_ok(), "SET {key}: {reply:?}");
}

fn config_get(server: &RedisServer, key: &str) -> String {
    match server.cmd(&["CONFIG", "GET", key]) {
        Resp::Array(Some(items)) if items.len() == 2 => items[1].text().unwrap(),
        other => panic!("CONFIG GET {key}: {other:?}"),
    }
}

#[test]
fn single_server_answers_ping_and_leaves_nothing_behind() {
    if !redis_or_skip("single_server_answers_ping_and_leaves_nothing_behind") {
        return;
    }
    let t = Instant::now();
    let server = RedisServer::start();
    eprintln!("redis-server started in {:?}", t.elapsed());

    let port = server.port();
    assert_ne!(port, 6379);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(server.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert_eq!(server.cli(&["PING"]), "PONG");
    let info = server.info("server");
    assert_eq!(info_field(&info, "process_id"), server.pid().map(|p| p.to_string()));
    assert_eq!(info_field(&info, "tcp_port"), Some(port.to_string()));
    assert_eq!(redis_pids_on_port(port), vec![server.pid().unwrap()]);

    // The configuration the harness promises.
    assert_eq!(config_get(&server, "save"), "");
    assert_eq!(config_get(&server, "appendonly"), "no");
    assert_eq!(config_get(&server, "bind"), "127.0.0.1");
    assert_eq!(config_get(&server, "protected-mode"), "no");
    assert_eq!(Path::new(&config_get(&server, "dir")), server.dir());
    assert!(server.log().contains("Ready to accept connections"), "{}", server.log());

    set(&server, "k", "v");
    assert_eq!(get(&server, "k").as_deref(), Some("v"));
    server.flushall();
    assert_eq!(get(&server, "k"), None);

    let footprint = Footprint::of(&[&server]);
    let t = Instant::now();
    drop(server);
    eprintln!("redis-server dropped in {:?}", t.elapsed());
    footprint.assert_gone();
}

#[test]
fn stop_and_restart_keep_the_port_and_the_aof_data() {
    if !redis_or_skip("stop_and_restart_keep_the_port_and_the_aof_data") {
        return;
    }
    let mut server = RedisServer::start_with_aof();
    let (port, dir) = (server.port(), server.dir().to_path_buf());
    assert_eq!(config_get(&server, "appendonly"), "yes");
    assert_eq!(config_get(&server, "appendfsync"), "always");
    // Integers past 2^53 and near i64::MAX, as balances will be.
    set(&server, "big", "9223372036854775000");
    assert_eq!(server.cmd(&["INCRBY", "big", "807"]), Resp::Integer(i64::MAX));

    // Clean stop: the port is closed, and it comes back on the same port with the same data.
    let first_pid = server.pid().unwrap();
    let t = Instant::now();
    server.stop();
    eprintln!("stop took {:?}", t.elapsed());
    assert!(!server.is_running());
    assert!(server.try_cmd(&["PING"]).is_err(), "stopped server still answers");
    assert!(redis_pids_on_port(port).is_empty());
    let t = Instant::now();
    server.restart();
    eprintln!("restart took {:?}", t.elapsed());
    assert!(server.is_running());
    assert_eq!((server.port(), server.dir()), (port, dir.as_path()));
    assert_ne!(server.pid().unwrap(), first_pid);
    assert_eq!(get(&server, "big").as_deref(), Some("9223372036854775807"));

    // Crash: SIGKILL right after a write; appendfsync always kept it.
    set(&server, "last", "written just before the crash");
    let crashed_pid = server.pid().unwrap();
    server.kill();
    assert!(!Path::new(&format!("/proc/{crashed_pid}")).exists());
    assert!(server.try_cmd(&["PING"]).is_err(), "killed server still answers");
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(get(&server, "last").as_deref(), Some("written just before the crash"));
    assert_eq!(get(&server, "big").as_deref(), Some("9223372036854775807"));

    // restart() on a running server stops it first.
    let running_pid = server.pid().unwrap();
    server.restart();
    assert_ne!(server.pid().unwrap(), running_pid);
    assert_eq!(get(&server, "last").as_deref(), Some("written just before the crash"));

    let footprint = Footprint::of(&[&server]);
    drop(server);
    footprint.assert_gone();
}

#[test]
fn restart_waits_for_its_port_while_another_process_holds_it() {
    if !redis_or_skip("restart_waits_for_its_port_while_another_process_holds_it") {
        return;
    }
    let mut server = RedisServer::start();
    let port = server.port();
    server.stop();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).expect("port free after stop");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(700));
        drop(squatter);
    });
    let t = Instant::now();
    server.restart();
    assert!(t.elapsed() >= std::time::Duration::from_millis(600), "restarted while the port was held");
    release.join().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.cmd(&["PING"]), Resp::Simple("PONG".into()));
    assert!(server.log().contains("Address already in use"), "{}", server.log());
    let footprint = Footprint::of(&[&server]);
    drop(server);
    footprint.assert_gone();
}

/// A stopped server keeps its port: no other server, in this test process or in another one,
/// is handed it before the restart (a test that took it would get the other test's node writing
/// into its Redis, and both would see money that is not theirs).
#[test]
fn a_stopped_servers_port_is_never_handed_to_another_server() {
    if !redis_or_skip("a_stopped_servers_port_is_never_handed_to_another_server") {
        return;
    }
    let mut server = RedisServer::start();
    let port = server.port();
    server.stop();
    assert!(!port_available(port), "127.0.0.1:{port} of a stopped server could be handed out again");
    server.restart();
    assert_eq!(server.port(), port);
    drop(server);
    assert!(!port_available(port), "127.0.0.1:{port} handed out twice in one test process");
}

/// Claimed ports: all different, never the shared Redis's, never in the kernel's ephemeral
/// range (where a `:0` bind or an outgoing connection could take one), and none of them
/// claimable again.
#[test]
fn claimed_ports_are_distinct_and_outside_the_ephemeral_range() {
    let (low, high) = common::ports::ephemeral_range();
    let ports: Vec<u16> = (0..200).map(|_| common::ports::claim()).collect();
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), ports.len(), "a port was handed out twice: {ports:?}");
    for port in ports {
        assert!(port != 6379 && !(low..=high).contains(&port), "{port} (ephemeral range {low}-{high})");
        assert!(!common::ports::available(port), "{port} claimable again");
    }
}

#[test]
fn default_server_keeps_nothing_across_a_restart() {
    if !redis_or_skip("default_server_keeps_nothing_across_a_restart") {
        return;
    }
    let mut server = RedisServer::start();
    set(&server, "k", "v");
    server.stop();
    server.restart();
    assert_eq!(get(&server, "k"), None, "save \"\" and appendonly no must start empty");
    let footprint = Footprint::of(&[&server]);
    drop(server);
    footprint.assert_gone();
}

#[test]
fn three_master_cluster_is_ok_and_redirects() {
    if !redis_or_skip("three_master_cluster_is_ok_and_redirects") {
        return;
    }
    let t = Instant::now();
    let cluster = RedisCluster::start(3);
    eprintln!("3-master cluster ok in {:?}", t.elapsed());

    let ports = cluster.ports();
    assert_eq!(cluster.urls(), ports.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect::<Vec<_>>());
    for (i, node) in cluster.nodes().iter().enumerate() {
        let info = cluster.cluster_info(i);
        assert_eq!(info_field(&info, "cluster_state").as_deref(), Some("ok"), "{info}");
        assert_eq!(info_field(&info, "cluster_size").as_deref(), Some("3"), "{info}");
        assert!(node.info("server").contains("redis_mode:cluster"));
        assert_ne!(node.port(), 6379);
    }

    // Exactly one node owns the key; the others answer MOVED to it.
    let key = "thitsax:harness:key";
    let mut owner = None;
    for node in cluster.nodes() {
        match node.cmd(&["GET", key]) {
            Resp::Bulk(None) => {
                assert!(owner.is_none(), "two nodes serve {key}");
                owner = Some(node.port());
            }
            Resp::Error(e) if e.starts_with("MOVED ") => {}
            other => panic!("GET {key} on {}: {other:?}", node.port()),
        }
    }
    let owner = owner.expect("one node serves the key");
    let others: Vec<&RedisServer> = cluster.nodes().iter().filter(|n| n.port() != owner).collect();
    let moved = others[0].cmd(&["GET", key]);
    assert!(
        moved.text().is_none() && format!("{moved:?}").contains(&format!("127.0.0.1:{owner}")),
        "{moved:?}"
    );

    // Set through one non-owner and read through the other, both following redirects.
    assert_eq!(others[0].cli(&["-c", "SET", key, "across the cluster"]), "OK");
    assert_eq!(others[1].cli(&["-c", "GET", key]), "across the cluster");
    let owner_node = cluster.nodes().iter().find(|n| n.port() == owner).unwrap();
    assert_eq!(get(owner_node, key).as_deref(), Some("across the cluster"));

    let mut footprint = Footprint::of(&cluster.nodes().iter().collect::<Vec<_>>());
    footprint.ports.extend(ports.iter().map(|p| p + 10000));
    let t = Instant::now();
    drop(cluster);
    eprintln!("cluster dropped in {:?}", t.elapsed());
    footprint.assert_gone();
}

#[test]
fn cluster_node_restart_rejoins() {
    if !redis_or_skip("cluster_node_restart_rejoins") {
        return;
    }
    let mut cluster = RedisOptions::new().aof(true).start_cluster(3);
    assert_eq!(cluster.nodes()[1].cli(&["-c", "SET", "{a}x", "1"]), "OK");
    let port = cluster.nodes()[2].port();
    cluster.node_mut(2).kill();
    cluster.node_mut(2).restart();
    assert_eq!(cluster.nodes()[2].port(), port);
    cluster.wait_ok(std::time::Duration::from_secs(30));
    assert_eq!(cluster.nodes()[0].cli(&["-c", "GET", "{a}x"]), "1");
    let footprint = Footprint::of(&cluster.nodes().iter().collect::<Vec<_>>());
    drop(cluster);
    footprint.assert_gone();
}

#[test]
fn skip_gate_skips_locally_and_fails_in_ci() {
    let missing = || Err("redis-server not found (No such file or directory)".to_string());
    assert_eq!(skip_decision("t", Ok("v=7".into()), Some("true")), Ok(true));
    assert_eq!(skip_decision("t", Ok("v=7".into()), None), Ok(true));
    assert_eq!(skip_decision("t", missing(), None), Ok(false));
    for not_ci in ["", "0", "false", "FALSE"] {
        assert_eq!(skip_decision("t", missing(), Some(not_ci)), Ok(false), "CI={not_ci:?}");
    }
    for ci in ["true", "1", "yes"] {
        let err = skip_decision("t", missing(), Some(ci)).unwrap_err();
        assert!(err.contains("CI is set") && err.contains("redis-server"), "{err}");
    }
}
