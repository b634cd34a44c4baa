//! The thitsax side's payee: two ThitsaX nodes (the release binary, in-memory store, configs
//! written to the lab's dir), so that the transfer's ILP leg is real: STREAM over
//! ILP-over-HTTP through a second node.
//!
//! - node `dfsp` serves the payee Connector's backend API (`[mojaloop]`, DFSP id `payeefsp` like
//!   the direct side's Connector). The scheme's USD (2 decimals) is held by its local account
//!   `usd` (a negative `min_balance`: the node pays out what the scheme pays it), and every payee
//!   party (MSISDN `PAYEE_PREFIX...`, one per transfer: see `payer`) is the SPSP URL of local
//!   account `ana` on node `wallet`.
//!   Its peer `wallet` (USD, scale 9) is reached over ILP-over-HTTP.
//! - node `wallet` holds `ana` (USD, scale 9) and answers SPSP for it; its peer `dfsp` may owe
//!   it (a negative `min_balance`).
//!
//! A Mojaloop transfer then makes: `GET /parties` → an SPSP query to `wallet`; `POST
//! /quoterequests` → an SPSP query and a STREAM rate probe (test packets through `wallet`);
//! `POST /transfers` → an outgoing payment of the node (recorded in its store, sent by its
//! sending worker: SPSP query, probe, the money packet, close), answered once delivered.
//! After a run the books say whether every transfer was paid once: `ana` holds exactly what the
//! transfers delivered and `usd` is short by exactly as much.

use std::path::Path;
use std::process::Command;

use crate::compare::lab::Lab;
use crate::mojaloop::payer::{CURRENCY, PAYEE_PREFIX};
use crate::mojaloop::ports::Ports;
use crate::payment::{admin, ADMIN_TOKEN};

/// The Mojaloop currency's decimals, and the scale of its local account at node `dfsp`.
pub(crate) const CURRENCY_DECIMALS: u8 = 2;
/// The scale of `ana`, and of both peer accounts.
pub(crate) const WALLET_SCALE: u8 = 9;
/// A limit far beyond any run, so that no balance limit takes part.
const MIN_BALANCE: &str = "-1000000000000000000";

/// The listeners of both nodes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NodesPorts {
    pub(crate) dfsp_ilp: u16,
    pub(crate) dfsp_admin: u16,
    /// Bound because `usd` is a local account; never asked.
    pub(crate) dfsp_spsp: u16,
    pub(crate) dfsp_backend: u16,
    pub(crate) wallet_ilp: u16,
    pub(crate) wallet_admin: u16,
    pub(crate) wallet_spsp: u16,
}

impl NodesPorts {
    pub(crate) fn claim(ports: &Ports) -> Result<NodesPorts, String> {
        Ok(NodesPorts {
            dfsp_ilp: ports.claim()?,
            dfsp_admin: ports.claim()?,
            dfsp_spsp: ports.claim()?,
            dfsp_backend: ports.claim()?,
            wallet_ilp: ports.claim()?,
            wallet_admin: ports.claim()?,
            wallet_spsp: ports.claim()?,
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

/// The two configs: `dfsp` (the payee DFSP, `payee_outbound` its Connector's outbound port), `wallet`.
pub(crate) fn configs(p: &NodesPorts, s: &NodeSettings, payee_outbound: u16) -> [String; 2] {
    let dfsp = format!(
        r#"{}
[[accounts]]
id = "usd"
relation = "local"
asset_code = "{CURRENCY}"
asset_scale = {CURRENCY_DECIMALS}
min_balance = {MIN_BALANCE}

[[accounts]]
id = "wallet"
relation = "peer"
asset_code = "{CURRENCY}"
asset_scale = {WALLET_SCALE}
ilp_address = "test.wallet"
incoming_token = "wallet-to-dfsp"
outgoing_url = "http://127.0.0.1:{}/"
outgoing_token = "dfsp-to-wallet"

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
receiver = "http://127.0.0.1:{}/ana"
"#,
        listeners("test.dfsp", s, p.dfsp_ilp, p.dfsp_admin, p.dfsp_spsp),
        p.wallet_ilp,
        p.dfsp_backend,
        s.backend_limits(),
        p.wallet_spsp,
    );
    let wallet = format!(
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
        listeners("test.wallet", s, p.wallet_ilp, p.wallet_admin, p.wallet_spsp),
        p.dfsp_ilp,
    );
    [dfsp, wallet]
}

/// The two running nodes.
pub(crate) struct Nodes {
    pub(crate) ports: NodesPorts,
    pub(crate) dfsp_pid: u32,
    pub(crate) wallet_pid: u32,
}

/// Writes the configs as `<tag>-dfsp.toml` and `<tag>-wallet.toml`, starts both nodes (logs
/// `<tag>-dfsp.log`, `<tag>-wallet.log`) and waits until every listener answers.
pub(crate) fn start(
    lab: &Lab,
    bin: &Path,
    tag: &str,
    ports: NodesPorts,
    settings: &NodeSettings,
    payee_outbound: u16,
) -> Result<Nodes, String> {
    let [dfsp, wallet] = configs(&ports, settings, payee_outbound);
    let mut pids = Vec::new();
    for (node, toml, listening) in [
        ("wallet", wallet, vec![ports.wallet_ilp, ports.wallet_admin, ports.wallet_spsp]),
        ("dfsp", dfsp, vec![ports.dfsp_ilp, ports.dfsp_admin, ports.dfsp_backend]),
    ] {
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
    Ok(Nodes { ports, wallet_pid: pids[0], dfsp_pid: pids[1] })
}

impl Nodes {
    pub(crate) fn stop(&self, lab: &Lab) {
        lab.children.kill(self.dfsp_pid);
        lab.children.kill(self.wallet_pid);
    }

    /// The balances of `usd` at `dfsp` and `ana` at `wallet`, in their own scales.
    pub(crate) fn books(&self) -> Result<(i128, i128), String> {
        let read = |port: u16, account: &str| -> Result<i128, String> {
            let (status, v) = admin(port, "GET", &format!("/accounts/{account}/balance"), "")?;
            v["balance"]
                .as_str()
                .and_then(|b| b.parse().ok())
                .ok_or_else(|| format!("GET /accounts/{account}/balance answered {status}: {v}"))
        };
        Ok((read(self.ports.dfsp_admin, "usd")?, read(self.ports.wallet_admin, "ana")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_accepted_by_thitsax_and_name_the_party_at_the_wallet() {
        let p = NodesPorts {
            dfsp_ilp: 20001,
            dfsp_admin: 20002,
            dfsp_spsp: 20003,
            dfsp_backend: 20004,
            wallet_ilp: 20005,
            wallet_admin: 20006,
            wallet_spsp: 20007,
        };
        let settings = |connections_max, timeout_ms| NodeSettings {
            worker_threads: 1,
            log_level: "info",
            backend_connections_max: connections_max,
            backend_header_read_timeout_ms: timeout_ms,
        };
        let [dfsp, wallet] = configs(&p, &settings(None, None), 20010);
        let parse = |t: &str| ::thitsax::config::Config::from_toml(t).unwrap_or_else(|e| panic!("{e}\n{t}"));
        let (dfsp, wallet) = (parse(&dfsp), parse(&wallet));
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
        let [tuned, _] = configs(&p, &settings(Some(1024), Some(500)), 20010);
        let tuned = parse(&tuned);
        let backend = &tuned.mojaloop.as_ref().expect("[mojaloop]").backend;
        assert_eq!(backend.connections_max, 1024);
        assert_eq!(backend.header_read_timeout, std::time::Duration::from_millis(500));
    }
}
