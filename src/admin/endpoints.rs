//! The admin API's routes, one function each. Bodies in and out are JSON; balances and amounts
//! are decimal strings (they may exceed what a JSON number holds exactly).

use super::{json_body, AdminError, Change, Gate};
use crate::account::{Account, AccountRecord};
use crate::balance::Balance;
use crate::http::listener::{percent_decode, respond, CONTENT_TYPE_JSON};
use crate::metrics::{Scrape, StoreFigures};
use crate::node::Node;
use crate::packet::IlpAddress;
use crate::rates::RatesRecord;
use crate::rules::{self, AccountInput};
use crate::settlement::outgoing::SettleNowError;
use crate::store::{PayoutAction, Store};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use std::sync::Arc;
use tracing::info;

type Answer = Result<Response<Full<Bytes>>, AdminError>;

/// Dispatches an authenticated request.
pub(super) async fn route<S: Store>(gate: &Gate<S>, req: Request<Incoming>) -> Answer {
    let segments = segments(req.uri().path())?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    match (segments.as_slice(), method) {
        (["accounts"], Method::GET) => list_accounts(gate),
        (["accounts"], Method::POST) => create_account(gate, req, &query).await,
        (["accounts"], _) => Err(AdminError::MethodNotAllowed("GET, POST")),
        (["accounts", id], Method::GET) => get_account(gate, id),
        (["accounts", id], Method::PUT) => update_account(gate, id, req).await,
        (["accounts", id], Method::DELETE) => delete_account(gate, id, &query).await,
        (["accounts", _], _) => Err(AdminError::MethodNotAllowed("GET, PUT, DELETE")),
        (["accounts", id, "balance"], Method::GET) => balance(gate, id).await,
        (["accounts", _, "balance"], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["accounts", id, "settle"], Method::POST) => settle_now(gate, id).await,
        (["accounts", _, "settle"], _) => Err(AdminError::MethodNotAllowed("POST")),
        (["accounts", id, "rafiki", "liquidity"], Method::GET) => reconcile(gate, id).await,
        (["accounts", _, "rafiki", "liquidity"], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["accounts", id, "incoming-payments"], Method::GET) => super::incoming::list(gate, id).await,
        (["accounts", id, "incoming-payments"], Method::POST) => super::incoming::create(gate, id, req).await,
        (["accounts", _, "incoming-payments"], _) => Err(AdminError::MethodNotAllowed("GET, POST")),
        (["accounts", id, "incoming-payments", payment], Method::GET) => {
            super::incoming::get(gate, id, payment).await
        }
        (["accounts", _, "incoming-payments", _], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["accounts", id, "payments"], Method::GET) => super::payments::list(gate, id).await,
        (["accounts", _, "payments"], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["payments"], Method::POST) => super::payments::create(gate, req).await,
        (["payments"], _) => Err(AdminError::MethodNotAllowed("POST")),
        (["payments", id], Method::GET) => super::payments::get(gate, id, &query).await,
        (["payments", _], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["peers", "auto"], Method::POST) => super::peers::auto_peer(gate, req).await,
        (["peers", "auto"], Method::GET) => super::peers::list(gate),
        (["peers", "auto"], _) => Err(AdminError::MethodNotAllowed("GET, POST")),
        (["payouts"], Method::GET) => super::payouts::list(gate).await,
        (["payouts"], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["payouts", id], Method::GET) => super::payouts::get(gate, id).await,
        (["payouts", _], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["payouts", id, "retry"], Method::POST) => super::payouts::act(gate, id, PayoutAction::Retry).await,
        (["payouts", id, "refund"], Method::POST) => {
            super::payouts::act(gate, id, PayoutAction::Refund).await
        }
        (["payouts", _, "retry" | "refund"], _) => Err(AdminError::MethodNotAllowed("POST")),
        (["balances"], Method::GET) => balances(gate).await,
        (["balances"], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["routes"], Method::GET) => routes(gate).await,
        (["routes"], _) => Err(AdminError::MethodNotAllowed("GET")),
        (["routes", prefix], Method::PUT) => put_route(gate, prefix, req).await,
        (["routes", prefix], Method::DELETE) => delete_route(gate, prefix).await,
        (["routes", _], _) => Err(AdminError::MethodNotAllowed("PUT, DELETE")),
        (["rates"], Method::GET) => Ok(json(StatusCode::OK, &gate.node.rates.load().to_record())),
        (["rates"], Method::PUT) => put_rates(gate, req).await,
        (["rates"], _) => Err(AdminError::MethodNotAllowed("GET, PUT")),
        (["metrics"], Method::GET) => metrics(gate).await,
        (["metrics"], _) => Err(AdminError::MethodNotAllowed("GET")),
        _ => Err(AdminError::NotFound(
            "see the README for the admin routes (/accounts, /balances, /routes, /rates, /payments, /payouts, /peers/auto, /metrics)".into(),
        )),
    }
}

/// The path's segments, percent-decoded.
fn segments(path: &str) -> Result<Vec<String>, AdminError> {
    let bad = || AdminError::NotFound(format!("{path:?} is not valid percent-encoded UTF-8"));
    path.strip_prefix('/').unwrap_or(path).split('/').map(|s| percent_decode(s).ok_or_else(bad)).collect()
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).expect("admin views serialize");
    respond(status, CONTENT_TYPE_JSON, body)
}

/// An account as the API shows it: its configured form without the outgoing token (a secret
/// the node must keep in clear; `outgoing_token_set` says whether there is one), plus the
/// address it is reached at (a child's is derived from the node's).
#[derive(Serialize)]
struct AccountView {
    #[serde(flatten)]
    record: AccountRecord,
    outgoing_token_set: bool,
    address: Option<String>,
}

pub(super) fn view(account: &Account) -> serde_json::Value {
    let mut record = account.to_record();
    let outgoing_token_set = record.outgoing_token.take().is_some();
    let view = AccountView {
        record,
        outgoing_token_set,
        address: account.ilp_address.as_ref().map(|a| a.to_string()),
    };
    let mut view = serde_json::to_value(view).expect("an account serializes");
    // Amounts are decimal strings, as balances are: a JSON number past 2^53 is rounded by many
    // clients.
    if let Some(object) = view.as_object_mut() {
        for (key, _) in rules::ACCOUNT_AMOUNT_FIELDS {
            if let Some(serde_json::Value::Number(n)) = object.get(key) {
                let text = n.to_string();
                object.insert(key.to_string(), serde_json::Value::String(text));
            }
        }
    }
    view
}

fn unknown_account(id: &str) -> AdminError {
    AdminError::NotFound(format!("no account {id:?}"))
}

fn served<S>(gate: &Gate<S>, id: &str) -> Result<Arc<Account>, AdminError> {
    gate.node.accounts.load().get(id).cloned().ok_or_else(|| unknown_account(id))
}

/// `GET /accounts`: every account, by id.
fn list_accounts<S>(gate: &Gate<S>) -> Answer {
    let accounts = gate.node.accounts.load();
    let mut views: Vec<(Arc<str>, serde_json::Value)> =
        accounts.iter().map(|a| (a.id.clone(), view(a))).collect();
    views.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<serde_json::Value> = views.into_iter().map(|(_, v)| v).collect();
    Ok(json(StatusCode::OK, &views))
}

fn get_account<S>(gate: &Gate<S>, id: &str) -> Answer {
    Ok(json(StatusCode::OK, &view(&*served(gate, id)?)))
}

fn account_input(body: &[u8]) -> Result<AccountInput, AdminError> {
    AccountInput::from_json(body).map_err(|problems| AdminError::Invalid { what: "account", problems })
}

/// `POST /accounts`: a new account (409 if the id is taken); 201 with it. If the store still
/// holds a balance under the id (an account deleted with `?force=true`), the new account would
/// inherit it, counted in its own asset and scale: refused (409) unless `?force=true` says the
/// operator recreates the same account.
async fn create_account<S: Store>(gate: &Gate<S>, req: Request<Incoming>, query: &str) -> Answer {
    let force = forced(query);
    let input = account_input(&json_body(gate, req).await?)?;
    let _write = gate.writes.lock().await;
    if gate.node.accounts.load().get(input.id()).is_some() {
        return Err(AdminError::Conflict(format!(
            "account {:?} exists; use PUT /accounts/{{id}}",
            input.id()
        )));
    }
    let left = gate.node.store.balance(input.id()).await?;
    if left != 0 && !force {
        return Err(AdminError::Conflict(format!(
            "the store holds a balance of {left} under id {:?} from an account deleted earlier; \
             add ?force=true only if this is that account again (same asset and scale)",
            input.id()
        )));
    }
    let account = put_account(gate, input).await?;
    info!(account = %account.id, "account created through the admin API");
    Ok(json(StatusCode::CREATED, &view(&account)))
}

/// `?force=true` among the query's pairs.
fn forced(query: &str) -> bool {
    query.split('&').any(|pair| pair == "force=true")
}

/// `PUT /accounts/{id}`: replaces an existing account (404 if there is none).
async fn update_account<S: Store>(gate: &Gate<S>, id: &str, req: Request<Incoming>) -> Answer {
    let input = account_input(&json_body(gate, req).await?)?;
    if input.id() != id {
        return Err(AdminError::BadRequest(format!(
            "the body's id {:?} is not the path's {id:?}",
            input.id()
        )));
    }
    let _write = gate.writes.lock().await;
    served(gate, id)?;
    let account = put_account(gate, input).await?;
    info!(account = %account.id, "account updated through the admin API");
    Ok(json(StatusCode::OK, &view(&account)))
}

/// Validates `input` with the whole set and applies it. An existing account's asset cannot
/// change (409): its balance is counted in it. The caller holds the write lock.
pub(super) async fn put_account<S: Store>(
    gate: &Gate<S>,
    input: AccountInput,
) -> Result<Account, AdminError> {
    let node = &gate.node;
    let id = input.id().to_string();
    let accounts = node.accounts.load();
    let set = rules::accounts_with(&node.address, &node.rates.load(), accounts.iter().map(|a| &**a), input)
        .map_err(|problems| AdminError::Invalid { what: "account", problems })?;
    let account = set.iter().find(|a| *a.id == *id).expect("the input is in the set").clone();
    if let Some(message) = account.hold_time_max.and_then(|h| node.expiry.account_hold_problem(h)) {
        let problem = rules::Problem { path: "account.hold_time_ms_max".into(), message };
        return Err(AdminError::Invalid { what: "account", problems: rules::ConfigError(vec![problem]) });
    }
    if account.mojaloop_settlement.is_some() {
        let problem = match node.mojaloop.as_deref() {
            None => Some(("mojaloop_settlement", "needs the node's [mojaloop] section".to_string())),
            Some(dfsp) => dfsp.scheme.settlement_problem(&account),
        };
        if let Some((key, message)) = problem {
            let problems =
                rules::ConfigError(vec![rules::Problem { path: format!("account.{key}"), message }]);
            return Err(AdminError::Invalid { what: "account", problems });
        }
    }
    if account.rafiki_liquidity.is_some() && node.rafiki.is_none() {
        let problem = rules::Problem {
            path: "account.rafiki_liquidity".into(),
            message:
                "needs the node's [rafiki.admin] section (the Rafiki admin API it records liquidity through)"
                    .into(),
        };
        return Err(AdminError::Invalid { what: "account", problems: rules::ConfigError(vec![problem]) });
    }
    if let Some(before) = accounts.get(&id) {
        // Checked after validation so that a bad field is reported first.
        if (&*account.asset_code, account.asset_scale) != (&*before.asset_code, before.asset_scale) {
            return Err(AdminError::Conflict(format!(
                "account {id:?} holds a balance in {} at scale {}: its asset cannot change; create another account",
                before.asset_code, before.asset_scale
            )));
        }
    }
    gate.tables.apply(Change::PutAccount { accounts: set, account: Box::new(account.clone()) }).await?;
    node.settlement.accounts_changed();
    Ok(account)
}

/// `DELETE /accounts/{id}`: removes the account and the static routes to it. Refused (409) while
/// its balance is not zero or a settlement of it is pending, unless `?force=true`: the balance
/// stays in the store (with Redis, in its journal) and comes back if the account is created again.
async fn delete_account<S: Store>(gate: &Gate<S>, id: &str, query: &str) -> Answer {
    let force = forced(query);
    let _write = gate.writes.lock().await;
    let account = served(gate, id)?;
    if !force {
        let balance = gate.node.store.balance(id).await?;
        let pending = gate.node.store.pending_settlements(&account).await?;
        if balance != 0 || !pending.is_empty() {
            return Err(AdminError::Conflict(format!(
                "account {id:?} has balance {balance} and {} pending settlements; settle first, or add ?force=true",
                pending.len()
            )));
        }
    }
    gate.tables.apply(Change::DeleteAccount(account.id.clone())).await?;
    gate.node.settlement.accounts_changed();
    info!(account = %id, force, "account deleted through the admin API");
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}

#[derive(Serialize)]
struct BalanceView {
    account: String,
    /// In the account's asset and scale, as a decimal string.
    balance: String,
    #[serde(skip)]
    balance_units: Balance,
    asset_code: String,
    asset_scale: u8,
}

fn balance_view(account: &Account, balance: Balance) -> BalanceView {
    BalanceView {
        account: account.id.to_string(),
        balance: balance.to_string(),
        balance_units: balance,
        asset_code: account.asset_code.to_string(),
        asset_scale: account.asset_scale,
    }
}

/// `GET /accounts/{id}/balance`.
async fn balance<S: Store>(gate: &Gate<S>, id: &str) -> Answer {
    let account = served(gate, id)?;
    let balance = gate.node.store.balance(id).await?;
    Ok(json(StatusCode::OK, &balance_view(&account, balance)))
}

/// `GET /accounts/{id}/rafiki/liquidity`: reconciles a Rafiki peer now: Rafiki's figure of the
/// node's liquidity, the node's own, and their difference.
async fn reconcile<S: Store>(gate: &Gate<S>, id: &str) -> Answer {
    use crate::rafiki::liquidity::ReconcileError;
    let account = served(gate, id)?;
    match crate::rafiki::liquidity::reconcile(&gate.node, &account).await {
        Ok(r) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "account": account.id.to_string(),
                "rafiki_liquidity": r.rafiki.to_string(),
                "expected_liquidity": r.expected.to_string(),
                "difference": r.difference.to_string(),
                "top_ups_pending": r.pending.to_string(),
                "withdrawals_owed": r.withdrawals_owed.to_string(),
                "agrees": r.difference == 0,
            }),
        )),
        Err(e @ ReconcileError::NotRafiki(_)) => Err(AdminError::Conflict(e.to_string())),
        Err(ReconcileError::Store(e)) => Err(e.into()),
        Err(ReconcileError::Api(e)) => Err(AdminError::BadGateway(e.to_string())),
    }
}

async fn read_balance<S: Store>(
    node: Arc<Node<S>>,
    account: Arc<Account>,
) -> Result<BalanceView, AdminError> {
    let balance = node.store.balance(&account.id).await?;
    Ok(balance_view(&account, balance))
}

/// Store reads in flight at once for `GET /balances`.
const BALANCE_READS_IN_FLIGHT_MAX: usize = 32;

/// Every account served now, by id.
fn sorted_accounts<S>(node: &Node<S>) -> Vec<Arc<Account>> {
    let mut accounts: Vec<Arc<Account>> = node.accounts.load().iter().cloned().collect();
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    accounts
}

/// Every account with its balance, in order: a bounded number of reads in flight (one Redis
/// round trip each).
async fn read_balances<S: Store>(
    node: &Arc<Node<S>>,
    accounts: Vec<Arc<Account>>,
) -> Result<Vec<BalanceView>, AdminError> {
    let reads = accounts.into_iter().map(|account| read_balance(node.clone(), account));
    futures::stream::iter(reads).buffered(BALANCE_READS_IN_FLIGHT_MAX).try_collect().await
}

/// `GET /balances`: every account's balance, by id.
async fn balances<S: Store>(gate: &Gate<S>) -> Answer {
    Ok(json(StatusCode::OK, &read_balances(&gate.node, sorted_accounts(&gate.node)).await?))
}

/// `GET /metrics`: the Prometheus text format. The packet figures are the node's own; balances
/// and pending settlements are read from the store now (if it cannot be read, `thitsax_store_up`
/// is 0 and those lines are left out rather than shown as 0).
async fn metrics<S: Store>(gate: &Gate<S>) -> Answer {
    let node = &gate.node;
    let accounts = sorted_accounts(node);
    let read = async {
        let balances = read_balances(node, accounts.clone()).await?;
        let mut pending = 0u64;
        for account in accounts.iter().filter(|a| a.settles()) {
            pending += node.store.pending_settlements(account).await?.len() as u64;
        }
        Ok::<_, AdminError>((balances, pending))
    };
    let read = read.await.ok();
    let balances: Vec<(&str, i128)> = match &read {
        Some((views, _)) => views.iter().map(|v| (v.account.as_str(), v.balance_units)).collect(),
        None => Vec::new(),
    };
    let store =
        read.as_ref().map(|(_, pending)| StoreFigures { balances: &balances, settlements_pending: *pending });
    let text = node.metrics.render(&Scrape { settlements: node.settlement.counters.figures(), store });
    Ok(respond(StatusCode::OK, CONTENT_TYPE_PROMETHEUS, text))
}

/// The Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE_PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Serialize)]
struct SettleView {
    account: String,
    /// `None`: the balance was not above `settle_to`, nothing to settle.
    settlement_id: Option<String>,
    amount: String,
    asset_scale: u8,
}

/// `POST /accounts/{id}/settle`: settles the balance down to `settle_to` now. 202 with the
/// settlement (driven by the worker, retried until the engine accepts it), or 200 with amount 0.
async fn settle_now<S: Store>(gate: &Gate<S>, id: &str) -> Answer {
    let account = served(gate, id)?;
    let begun = gate.node.settle_now(id).await.map_err(|e| match e {
        SettleNowError::UnknownAccount(_) => unknown_account(id),
        SettleNowError::NoEngine(_) => AdminError::Conflict(format!(
            "account {id:?} does not settle: it has no settlement_engine_url, mojaloop_settlement or rafiki_liquidity"
        )),
        SettleNowError::Store(e) => AdminError::from(e),
    })?;
    let (status, settlement_id, amount) = match begun {
        Some((settlement, amount)) => (StatusCode::ACCEPTED, Some(settlement.to_string()), amount),
        None => (StatusCode::OK, None, 0),
    };
    let view = SettleView {
        account: id.to_string(),
        settlement_id,
        amount: amount.to_string(),
        asset_scale: account.asset_scale,
    };
    Ok(json(status, &view))
}

#[derive(Serialize)]
struct RouteView {
    prefix: String,
    account: String,
    /// `static`: set in `[[routes]]` or through this API; `account`: the address of a child or a
    /// peer (change the account to change it).
    kind: &'static str,
}

#[derive(Serialize)]
struct RoutesView {
    routes: Vec<RouteView>,
    /// The parent, where destinations under no prefix go.
    default: Option<String>,
}

/// `GET /routes`: the routing table served now, by prefix.
async fn routes<S: Store>(gate: &Gate<S>) -> Answer {
    let statics = gate.tables.static_routes().await?;
    let table = gate.node.router.table();
    let mut routes: Vec<RouteView> = table
        .entries()
        .map(|(prefix, account)| RouteView {
            prefix: prefix.to_string(),
            account: account.to_string(),
            kind: match statics.iter().any(|(p, _)| p == prefix) {
                true => "static",
                false => "account",
            },
        })
        .collect();
    routes.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    Ok(json(StatusCode::OK, &RoutesView { routes, default: table.default_route().map(|a| a.to_string()) }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteInput {
    account: String,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &'static str) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::BadRequest(format!("invalid {what}: {e}")))
}

fn route_prefix(prefix: &str) -> Result<IlpAddress, AdminError> {
    IlpAddress::parse(prefix)
        .map_err(|e| AdminError::BadRequest(format!("invalid route prefix {prefix:?}: {e}")))
}

/// `PUT /routes/{prefix}` with `{"account": id}`: sets a static route (new or re-pointed).
async fn put_route<S: Store>(gate: &Gate<S>, prefix: &str, req: Request<Incoming>) -> Answer {
    let prefix = route_prefix(prefix)?;
    let input: RouteInput = parse_json(&json_body(gate, req).await?, "route")?;
    let _write = gate.writes.lock().await;
    let account = served(gate, &input.account)
        .map_err(|_| AdminError::BadRequest(format!("no account {:?} to route to", input.account)))?;
    let mut statics = gate.tables.static_routes().await?;
    statics.retain(|(p, _)| p != prefix.as_str());
    statics.push((prefix.to_string(), account.id.clone()));
    // The same check as the file's `[[routes]]`: a prefix an account already implies is refused.
    let accounts: Vec<Account> = gate.node.accounts.load().iter().map(|a| Account::clone(a)).collect();
    let pairs = statics.iter().map(|(p, a)| (p.clone(), a.to_string()));
    let (_, problems) = rules::routing_table(&accounts, pairs);
    if !problems.is_empty() {
        // The only route that can break a rule is the new one: name its field.
        let problems = problems
            .into_iter()
            .map(|p| rules::Problem {
                path: format!("route.{}", p.path.rsplit('.').next().unwrap_or("")),
                ..p
            })
            .collect();
        return Err(AdminError::Invalid { what: "route", problems: rules::ConfigError(problems) });
    }
    gate.tables.apply(Change::PutRoute { prefix: prefix.clone(), account: account.id.clone() }).await?;
    info!(prefix = %prefix, account = %account.id, "static route set through the admin API");
    let view = RouteView { prefix: prefix.to_string(), account: account.id.to_string(), kind: "static" };
    Ok(json(StatusCode::OK, &view))
}

/// `DELETE /routes/{prefix}`: removes a static route (404 if there is none; a route an account
/// implies is 409: change the account instead).
async fn delete_route<S: Store>(gate: &Gate<S>, prefix: &str) -> Answer {
    let _write = gate.writes.lock().await;
    let statics = gate.tables.static_routes().await?;
    if !statics.iter().any(|(p, _)| p == prefix) {
        return match gate.node.router.table().entries().find(|(p, _)| *p == prefix) {
            Some((_, account)) => Err(AdminError::Conflict(format!(
                "{prefix:?} is the address of account {account:?}, not a static route"
            ))),
            None => Err(AdminError::NotFound(format!("no static route {prefix:?}"))),
        };
    }
    gate.tables.apply(Change::DeleteRoute(prefix.to_string())).await?;
    info!(prefix, "static route deleted through the admin API");
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}

/// `PUT /rates` with `{"spread": "0.002", "prices": {"USD": "1", ...}}`: replaces the rates
/// whole, checked with the rules of `[rates]` and against the assets the accounts use.
async fn put_rates<S: Store>(gate: &Gate<S>, req: Request<Incoming>) -> Answer {
    let record: RatesRecord = parse_json(&json_body(gate, req).await?, "rates")?;
    let _write = gate.writes.lock().await;
    let accounts = gate.node.accounts.load();
    let rates = rules::rates_from_record(record, accounts.iter().map(|a| &**a))
        .map_err(|problems| AdminError::Invalid { what: "rates", problems })?;
    let shown = rates.to_record();
    gate.tables.apply(Change::PutRates(rates)).await?;
    info!(prices = shown.prices.len(), "rates replaced through the admin API");
    Ok(json(StatusCode::OK, &shown))
}
