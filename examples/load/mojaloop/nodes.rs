//! The thitsax side's payee: ThitsaX node `dfsp` (the release binary, in-memory store, configs
//! written to the lab's dir) and whom it pays, so that the transfer's ILP leg is real: STREAM
//! over ILP-over-HTTP to
//! - `--payee thitsax-wallet`: a second node, `wallet`;
//! - `--payee rafiki`: the Rafiki test double in this process (`rafiki`), the cross-network
//!   provider's case.
//!
//! - node `dfsp` serves the payee Connector's backend API (`[mojaloop]`, DFSP id `payeefsp` like
//!   the direct side's Connector). The scheme's USD (2 decimals) is held by its local account
//!   `usd` (a negative `min_balance`: the node pays out what the scheme pays it), and every payee
//!   party (MSISDN `PAYEE_PREFIX...`, one per transfer: see `payer`) is one receiver's SPSP URL:
//!   local account `ana` on node `wallet`, or the double's wallet address.
//!   Its peer (`wallet` or `rafiki`, USD, scale 9) is reached over ILP-over-HTTP; `rafiki` has
//!   the `hold_time_ms_max` a Rafiki peer needs (Rafiki books a Fulfill only within 5 s).
//! - node `wallet` holds `ana` (USD, scale 9) and answers SPSP for it; its peer `dfsp` may owe
//!   it (a negative `min_balance`).
//!
//! A Mojaloop transfer then makes: `GET /parties` → an SPSP query of the receiver; `POST
//! /quoterequests` → an SPSP query and a STREAM rate probe (test packets through the peer);
//! `POST /transfers` → an outgoing payment of the node (recorded in its store, sent by its
//! sending worker: SPSP query, probe, the money packet, close), answered once delivered.
//! After a run the books say whether every transfer was paid once: the receiver holds exactly
//! what the transfers delivered and `usd` is short by exactly as much.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::compare::lab::Lab;
use crate::mojaloop::payer::{CURRENCY, PAYEE_PREFIX};
use crate::mojaloop::ports::Ports;
use crate::mojaloop::rafiki::{NODE_TO_RAFIKI_TOKEN, RAFIKI_ADDRESS, RAFIKI_TO_NODE_TOKEN};
use crate::payment::{admin, ADMIN_TOKEN};

/// The Mojaloop currency's decimals, and the scale of its local account at node `dfsp`.
pub(crate) const CURRENCY_DECIMALS: u8 = 2;
/// The scale of `ana`, and of both peer accounts.
pub(crate) const WALLET_SCALE: u8 = 9;
/// A limit far beyond any run, so that no balance limit takes part.
const MIN_BALANCE: &str = "-1000000000000000000";
/// The outgoing hold time of peer account `rafiki`: Rafiki books a packet only if its Fulfill
/// arrives within 5 s, so the node must reject in time rather than fulfil too late (as
/// `examples/cnp/cnp.toml` has it).
pub(crate) const RAFIKI_HOLD_TIME_MS_MAX: u64 = 4000;

/// Whom node `dfsp` pays every transfer to.
#[derive(Clone, Debug)]
pub(crate) enum PayeeNode {
    /// Local account `ana` of node `wallet`, through peer account `wallet`.
    Wallet,
    /// A wallet address of the Rafiki test double (`wallet_url`, its SPSP URL), through peer
    /// account `rafiki` whose `outgoing_url` is the double's connector.
    Rafiki { connector: SocketAddr, wallet_url: String },
}

/// The listeners of both nodes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodesPorts {
    pub(crate) dfsp_ilp: u16,
    pub(crate) dfsp_admin: u16,
    /// Bound because `usd` is a local account; never asked.
    pub(crate) dfsp_spsp: u16,
    pub(crate) dfsp_backend: u16,
    /// Node `wallet`'s, when it runs.
    pub(crate) wallet: Option<WalletPorts>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct WalletPorts {
    pub(crate) ilp: u16,
    pub(crate) admin: u16,
    pub(crate) spsp: u16,
}

impl NodesPorts {
    /// `dfsp`'s ports, and `wallet`'s when `payee` is node `wallet`.
    pub(crate) fn claim(ports: &Ports, payee: &PayeeNode) -> Result<NodesPorts, String> {
        Ok(NodesPorts {
            dfsp_ilp: ports.claim()?,
            dfsp_admin: ports.claim()?,
            dfsp_spsp: ports.claim()?,
            dfsp_backend: ports.claim()?,
            wallet: match payee {
                PayeeNode::Wallet => {
                    Some(WalletPorts { ilp: ports.claim()?, admin: ports.claim()?, spsp: ports.claim()? })
                }
                PayeeNode::Rafiki { .. } => None,
            },
        })
    }
}

/// How both nodes run.
pub(crate) struct NodeSettings<'a> {
    pub(crate) worker_threads: usize,
    pub(crate) log_level: &'a str,
    /// `dfsp`'s backend listener limits, when not the node's defaults.
    pub(crate) backend_connections_max: Option<usize>,
    pub(crate) backend_header_read_timeout_ms: Option<u64>,
}

impl NodeSettings<'_> {
    /// The backend listener's keys of `[mojaloop]` that are set, one per line.
    fn backend_limits(&self) -> String {
        let mut out = String::new();
        if let Some(n) = self.backend_connections_max {
            out += &format!("backend_connections_max = {n}\n");
        }
        if let Some(ms) = self.backend_header_read_timeout_ms {
            out += &format!("backend_header_read_timeout_ms = {ms}\n");
        }
        out
    }
}

fn listeners(address: &str, s: &NodeSettings, ilp: u16, admin: u16, spsp: u16) -> String {
    format!(
        "[node]\nilp_address = \"{address}\"\nlog_level = \"{}\"\nworker_threads = {}\n\
         [http]\nlisten = \"127.0.0.1:{ilp}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [spsp]\nlisten = \"127.0.0.1:{spsp}\"\n",
        s.log_level, s.worker_threads
    )
}

/// Node `dfsp`'s peer account for `payee`, and the URL every payee party is.
fn payee_peer(p: &NodesPorts, payee: &PayeeNode) -> Result<(String, String), String> {
    Ok(match payee {
        PayeeNode::Wallet => {
            let w = p.wallet.ok_or("payee node `wallet` without its ports")?;
            (
                format!(
                    r#"[[accounts]]
id = "wallet"
relation = "peer"
asset_code = "{CURRENCY}"
asset_scale = {WALLET_SCALE}
ilp_address = "test.wallet"
incoming_token = "wallet-to-dfsp"
outgoing_url = "http://127.0.0.1:{}/"
outgoing_token = "dfsp-to-wallet"
"#,
                    w.ilp
                ),
                format!("http://127.0.0.1:{}/ana", w.spsp),
            )
        }
        // No ILDCP: the node has its own address, and Rafiki serves none to its peers.
        PayeeNode::Rafiki { connector, wallet_url } => (
            format!(
                r#"[[accounts]]
id = "rafiki"
relation = "peer"
asset_code = "{CURRENCY}"
asset_scale = {WALLET_SCALE}
ilp_address = "{RAFIKI_ADDRESS}"
incoming_token = "{RAFIKI_TO_NODE_TOKEN}"
outgoing_url = "http://{connector}/"
outgoing_token = "{NODE_TO_RAFIKI_TOKEN}"
hold_time_ms_max = {RAFIKI_HOLD_TIME_MS_MAX}
"#
            ),
            wallet_url.clone(),
        ),
    })
}

/// The configs: `dfsp` (the payee DFSP, `payee_outbound` its Connector's outbound port), and
/// `wallet` when `payee` is that node.
pub(crate) fn configs(
    p: &NodesPorts,
    s: &NodeSettings,
    payee_outbound: u16,
    payee: &PayeeNode,
) -> Result<(String, Option<String>), String> {
    let (peer, receiver) = payee_peer(p, payee)?;
    let dfsp = format!(
        r#"{}
[[accounts]]
id = "usd"
relation = "local"
asset_code = "{CURRENCY}"
asset_scale = {CURRENCY_DECIMALS}
min_balance = {MIN_BALANCE}

{peer}
[mojaloop]
dfsp_id = "payeefsp"
outbound_url = "http://127.0.0.1:{payee_outbound}"
party = {{ id_type = "BUSINESS", id_value = "thitsax" }}
backend_listen = "127.0.0.1:{}"
{}
[[mojaloop.currencies]]
code = "{CURRENCY}"
decimals = {CURRENCY_DECIMALS}
account = "usd"

[[mojaloop.parties]]
id_type = "MSISDN"
id_value_prefix = "{PAYEE_PREFIX}"
receiver = "{receiver}"
"#,
        listeners("test.dfsp", s, p.dfsp_ilp, p.dfsp_admin, p.dfsp_spsp),
        p.dfsp_backend,
        s.backend_limits(),
    );
    let wallet = p.wallet.filter(|_| matches!(payee, PayeeNode::Wallet)).map(|w| {
        format!(
            r#"{}
[[accounts]]
id = "dfsp"
relation = "peer"
asset_code = "{CURRENCY}"
asset_scale = {WALLET_SCALE}
ilp_address = "test.dfsp"
incoming_token = "dfsp-to-wallet"
outgoing_url = "http://127.0.0.1:{}/"
outgoing_token = "wallet-to-dfsp"
min_balance = {MIN_BALANCE}

[[accounts]]
id = "ana"
relation = "local"
asset_code = "{CURRENCY}"
asset_scale = {WALLET_SCALE}
"#,
            listeners("test.wallet", s, w.ilp, w.admin, w.spsp),
            p.dfsp_ilp,
        )
    });
    Ok((dfsp, wallet))
}

/// The running nodes.
pub(crate) struct Nodes {
    pub(crate) ports: NodesPorts,
    pub(crate) dfsp_pid: u32,
    /// Node `wallet`'s, when it runs.
    pub(crate) wallet_pid: Option<u32>,
}

/// Writes the configs as `<tag>-dfsp.toml` (and `<tag>-wallet.toml`), starts the nodes (logs
/// `<tag>-dfsp.log`, `<tag>-wallet.log`), the payee first, and waits until every listener
/// answers.
pub(crate) fn start(
    lab: &Lab,
    bin: &Path,
    tag: &str,
    ports: NodesPorts,
    settings: &NodeSettings,
    payee_outbound: u16,
    payee: &PayeeNode,
) -> Result<Nodes, String> {
    let (dfsp, wallet) = configs(&ports, settings, payee_outbound, payee)?;
    let mut nodes = Vec::new();
    if let (Some(toml), Some(w)) = (wallet, ports.wallet) {
        nodes.push(("wallet", toml, vec![w.ilp, w.admin, w.spsp]));
    }
    nodes.push(("dfsp", dfsp, vec![ports.dfsp_ilp, ports.dfsp_admin, ports.dfsp_backend]));
    let mut pids = Vec::new();
    for (node, toml, listening) in nodes {
        let name = format!("{tag}-{node}");
        let file = lab.dir.join(format!("{name}.toml"));
        std::fs::write(&file, toml).map_err(|e| format!("write {}: {e}", file.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(&file).env("NO_COLOR", "1");
        let pid = lab.start(&name, &mut cmd, false)?;
        for port in listening {
            lab.wait_port(&name, pid, port)?;
        }
        pids.push(pid);
    }
    let dfsp_pid = pids.pop().expect("dfsp was started");
    Ok(Nodes { ports, dfsp_pid, wallet_pid: pids.pop() })
}

/// An account's balance in its own scale, from a node's admin API.
fn balance(admin_port: u16, account: &str) -> Result<i128, String> {
    let (status, v) = admin(admin_port, "GET", &format!("/accounts/{account}/balance"), "")?;
    v["balance"]
        .as_str()
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| format!("GET /accounts/{account}/balance answered {status}: {v}"))
}

impl Nodes {
    pub(crate) fn stop(&self, lab: &Lab) {
        lab.children.kill(self.dfsp_pid);
        if let Some(pid) = self.wallet_pid {
            lab.children.kill(pid);
        }
    }

    /// The balance of `usd` at `dfsp`, in its scale.
    pub(crate) fn usd(&self) -> Result<i128, String> {
        balance(self.ports.dfsp_admin, "usd")
    }

    /// The balance of `ana` at `wallet`, in its scale.
    pub(crate) fn ana(&self) -> Result<i128, String> {
        let w = self.ports.wallet.ok_or("no node `wallet` in this run")?;
        balance(w.admin, "ana")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(connections_max: Option<usize>, timeout_ms: Option<u64>) -> NodeSettings<'static> {
        NodeSettings {
            worker_threads: 1,
            log_level: "info",
            backend_connections_max: connections_max,
            backend_header_read_timeout_ms: timeout_ms,
        }
    }

    fn ports(wallet: bool) -> NodesPorts {
        NodesPorts {
            dfsp_ilp: 20001,
            dfsp_admin: 20002,
            dfsp_spsp: 20003,
            dfsp_backend: 20004,
            wallet: wallet.then_some(WalletPorts { ilp: 20005, admin: 20006, spsp: 20007 }),
        }
    }

    fn parse(t: &str) -> ::thitsax::config::Config {
        ::thitsax::config::Config::from_toml(t).unwrap_or_else(|e| panic!("{e}\n{t}"))
    }

    #[test]
    fn configs_are_accepted_by_thitsax_and_name_the_party_at_the_wallet() {
        let p = ports(true);
        let (dfsp, wallet) = configs(&p, &settings(None, None), 20010, &PayeeNode::Wallet).unwrap();
        let (dfsp, wallet) = (parse(&dfsp), parse(&wallet.expect("node wallet's config")));
        let scheme = dfsp.mojaloop.as_ref().expect("[mojaloop]");
        assert_eq!(scheme.dfsp_id, "payeefsp");
        assert_eq!(scheme.backend_listen.port(), 20004);
        assert_eq!(
            scheme.receiver_for("MSISDN", &crate::mojaloop::payer::payee_msisdn(7)).as_deref(),
            Some("http://127.0.0.1:20007/ana")
        );
        assert!(wallet.accounts.iter().any(|a| &*a.id == "ana"));
        assert_eq!(wallet.worker_threads, Some(1));
        // The backend listener's limits, when given, reach the node.
        let (tuned, _) = configs(&p, &settings(Some(1024), Some(500)), 20010, &PayeeNode::Wallet).unwrap();
        let tuned = parse(&tuned);
        let backend = &tuned.mojaloop.as_ref().expect("[mojaloop]").backend;
        assert_eq!(backend.connections_max, 1024);
        assert_eq!(backend.header_read_timeout, std::time::Duration::from_millis(500));
        // Node wallet's ports are claimed only when it runs.
        assert!(configs(&ports(false), &settings(None, None), 20010, &PayeeNode::Wallet).is_err());
    }

    #[test]
    fn the_rafiki_payee_is_a_peer_with_a_short_hold_time_and_every_party_its_wallet_address() {
        let payee = PayeeNode::Rafiki {
            connector: "127.0.0.1:20020".parse().unwrap(),
            wallet_url: "http://127.0.0.1:20021/load-payee".into(),
        };
        let (dfsp, wallet) = configs(&ports(false), &settings(None, None), 20010, &payee).unwrap();
        assert!(wallet.is_none(), "no node wallet beside the Rafiki double");
        let dfsp = parse(&dfsp);
        let scheme = dfsp.mojaloop.as_ref().expect("[mojaloop]");
        for n in [0, 7, 199] {
            assert_eq!(
                scheme.receiver_for("MSISDN", &crate::mojaloop::payer::payee_msisdn(n)).as_deref(),
                Some("http://127.0.0.1:20021/load-payee")
            );
        }
        let ids: Vec<&str> = dfsp.accounts.iter().map(|a| &*a.id).collect();
        assert_eq!(ids, ["usd", "rafiki"]);
        let rafiki = dfsp.accounts.iter().find(|a| &*a.id == "rafiki").unwrap().to_record();
        assert_eq!(rafiki.ilp_address.as_deref(), Some(RAFIKI_ADDRESS));
        assert_eq!(rafiki.outgoing_url.as_deref(), Some("http://127.0.0.1:20020/"));
        assert_eq!(rafiki.outgoing_token.as_deref(), Some(NODE_TO_RAFIKI_TOKEN));
        assert_eq!(rafiki.hold_time_ms_max, Some(RAFIKI_HOLD_TIME_MS_MAX));
        assert_eq!((rafiki.asset_code.as_str(), rafiki.asset_scale), (CURRENCY, WALLET_SCALE));
        // A peer account has both tokens, though the double sends nothing in a run.
        assert!(rafiki.incoming_token_sha256.is_some());
    }
}
