//! The sender against an in-process path: a connector that converts at an exact rate (rounding
//! down, as connectors do) and refuses packets above its maximum with F08, in front of a receiver
//! built from this crate's own [`open`] and [`Opened`](crate::stream::Opened). Faults are
//! injected by kind of packet. Time is paused, so backoffs and deadlines are exact and instant.

use super::*;
use crate::packet::{amount_too_large_data, Fulfill};
use crate::stream::receiver::open;
use crate::stream::Reply;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const CONNECTOR: &str = "test.connector";
const RECEIVER: &str = "test.connector.receiver.token";

/// The packets a fault applies to: test packets (a random condition) or money packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Probes,
    Money,
}

/// How the path behaves.
#[derive(Debug, Clone)]
struct Path {
    /// The connector's conversion: `floor(amount × num / den)`.
    rate: (u64, u64),
    /// From the `n`-th fulfilled money packet on, money packets convert at this rate instead.
    rate_change: Option<(u64, (u64, u64))>,
    /// The connector's limit on the incoming amount (F08, in source units).
    connector_max: Option<u64>,
    /// A limit on the converted amount, refused F08 at the receiver's end, as Rafiki's
    /// connector does in front of its receiver (in receiver units).
    receiver_max: Option<u64>,
    /// Told in reply to `ConnectionNewAddress`.
    asset: Option<AssetDetails>,
    /// The stream's receive max (`StreamMaxMoney`); unlimited when `None`.
    receive_max: Option<u64>,
    /// The receiver closes the connection once it has received this much.
    close_at: Option<u64>,
    /// Each Prepare's time on the path, both ways.
    latency: Duration,
    /// Money packets are never answered.
    hang_money: bool,
    /// Rafiki's receiver: F99 with an empty message, no `StreamMaxMoney`, the sender's close echoed.
    rafiki: bool,
}

impl Default for Path {
    fn default() -> Self {
        Path {
            rate: (1, 1),
            rate_change: None,
            connector_max: None,
            receiver_max: None,
            asset: Some(usd()),
            receive_max: None,
            close_at: None,
            latency: Duration::from_millis(10),
            hang_money: false,
            rafiki: false,
        }
    }
}

fn usd() -> AssetDetails {
    AssetDetails { code: "USD".into(), scale: 9 }
}

fn mxn() -> AssetDetails {
    AssetDetails { code: "MXN".into(), scale: 2 }
}

/// What the path saw of one Prepare.
#[derive(Debug, Clone)]
struct Seen {
    amount: u64,
    money: bool,
    /// When it expires, on the test's (paused) clock.
    expires: Instant,
    /// What reached the receiver and whether it was fulfilled.
    arrived: Option<u64>,
    fulfilled: bool,
}

#[derive(Default)]
struct Ledger {
    received: u64,
    fulfilled_money: u64,
    seen: Vec<Seen>,
    in_flight: usize,
    in_flight_max: usize,
    closed: bool,
}

struct Network {
    path: Path,
    secret: SharedSecret,
    keys: StreamKeys,
    faults: Mutex<VecDeque<(Which, IlpErrorCode)>>,
    ledger: Mutex<Ledger>,
}

impl Network {
    fn new(path: Path) -> Arc<Network> {
        let secret = SharedSecret::from_bytes([7; 32]);
        Arc::new(Network {
            path,
            keys: secret.keys(),
            secret,
            faults: Mutex::new(VecDeque::new()),
            ledger: Mutex::new(Ledger::default()),
        })
    }

    fn fail(&self, which: Which, code: IlpErrorCode, times: usize) {
        self.faults.lock().unwrap().extend(std::iter::repeat_n((which, code), times));
    }

    fn received(&self) -> u64 {
        self.ledger.lock().unwrap().received
    }

    fn seen(&self) -> Vec<Seen> {
        self.ledger.lock().unwrap().seen.clone()
    }

    fn money_seen(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.money).collect()
    }

    /// Whether the Prepare carries money (only the test can tell: it holds the key).
    fn is_money(&self, prepare: &Prepare) -> bool {
        let Ok(plain) = self.keys.decrypt(prepare.data()) else { return false };
        let Ok(packet) = StreamPacket::decode(&plain) else { return false };
        packet.frames.iter().any(|f| matches!(f, Frame::StreamMoney { .. }))
    }

    fn reject(&self, code: IlpErrorCode, by: &str, message: &str, data: &[u8]) -> Response {
        Response::Reject(Reject::build(code, &IlpAddress::parse(by).unwrap(), message, data))
    }

    /// The connector, then the receiver.
    fn answer(&self, prepare: &Prepare, money: bool, expires: Instant) -> Response {
        let mut seen = Seen { amount: prepare.amount(), money, expires, arrived: None, fulfilled: false };
        let response = self.route(prepare, money, &mut seen);
        self.ledger.lock().unwrap().seen.push(seen);
        response
    }

    fn route(&self, prepare: &Prepare, money: bool, seen: &mut Seen) -> Response {
        let which = if money { Which::Money } else { Which::Probes };
        {
            let mut faults = self.faults.lock().unwrap();
            if faults.front().is_some_and(|(w, _)| *w == which) {
                let (_, code) = faults.pop_front().unwrap();
                return self.reject(code, CONNECTOR, "injected", b"");
            }
        }
        let amount = prepare.amount();
        if let Some(max) = self.path.connector_max.filter(|&m| amount > m) {
            return self.reject(
                IlpErrorCode::F08_AMOUNT_TOO_LARGE,
                CONNECTOR,
                "too large",
                &amount_too_large_data(amount, max),
            );
        }
        let (num, den) = match self.path.rate_change {
            Some((after, rate)) if money && self.ledger.lock().unwrap().fulfilled_money >= after => rate,
            _ => self.path.rate,
        };
        let arrived = u64::try_from(u128::from(amount) * u128::from(num) / u128::from(den)).unwrap();
        if amount > 0 && arrived == 0 {
            // As ThitsaX does: an amount that converts to nothing is not forwarded.
            return self.reject(
                IlpErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT,
                CONNECTOR,
                "rounds to zero",
                b"",
            );
        }
        if let Some(max) = self.path.receiver_max.filter(|&m| arrived > m) {
            let message = if self.path.rafiki { "" } else { "too large" };
            return self.reject(
                IlpErrorCode::F08_AMOUNT_TOO_LARGE,
                RECEIVER,
                message,
                &amount_too_large_data(arrived, max),
            );
        }
        seen.arrived = Some(arrived);
        self.receive(prepare, arrived, seen)
    }

    /// A receiver made of `stream::open` and `Opened`, keeping the stream's total.
    fn receive(&self, prepare: &Prepare, arrived: u64, seen: &mut Seen) -> Response {
        let Ok(opened) = open(&self.keys, arrived, prepare.execution_condition(), prepare.data()) else {
            return self.reject(IlpErrorCode::F06_UNEXPECTED_PAYMENT, RECEIVER, "", b"");
        };
        let mut reply = opened.reply();
        if let (Some(_), Some(asset)) = (opened.new_address(), &self.path.asset) {
            reply = reply.asset_details(&asset.code, asset.scale);
        }
        let mut ledger = self.ledger.lock().unwrap();
        let message = if self.path.rafiki { "" } else { "refused" };
        let refuse = |reply: &Reply| {
            let data = opened.reject(reply).unwrap();
            self.reject(IlpErrorCode::F99_APPLICATION_ERROR, RECEIVER, message, &data)
        };
        if opened.connection_close().is_some() {
            return refuse(&reply.close_connection(ErrorCode::NoError, ""));
        }
        if ledger.closed {
            return refuse(&reply.close_connection(ErrorCode::NoError, "closed"));
        }
        let receive_max = self.path.receive_max.unwrap_or(u64::MAX);
        if !opened.is_fulfillable() || arrived == 0 {
            return refuse(&reply);
        }
        if ledger.received.saturating_add(arrived) > receive_max {
            return refuse(&reply.max_money(STREAM_ID, receive_max, ledger.received));
        }
        ledger.received += arrived;
        ledger.fulfilled_money += 1;
        if !self.path.rafiki {
            reply = reply.max_money(STREAM_ID, receive_max, ledger.received);
        }
        if self.path.close_at.is_some_and(|at| ledger.received >= at) {
            ledger.closed = true;
            reply = reply.close_connection(ErrorCode::NoError, "enough");
        }
        seen.fulfilled = true;
        let fulfilled = opened.fulfill(&reply).unwrap();
        Response::Fulfill(Fulfill::build(&fulfilled.fulfillment, &fulfilled.data))
    }
}

impl Transport for Arc<Network> {
    async fn send(&self, prepare: Prepare) -> Response {
        let money = self.is_money(&prepare);
        let left = prepare.expires_at().duration_since(SystemTime::now()).unwrap_or_default();
        let expires = Instant::now() + left;
        {
            let mut ledger = self.ledger.lock().unwrap();
            ledger.in_flight += 1;
            ledger.in_flight_max = ledger.in_flight_max.max(ledger.in_flight);
        }
        if money && self.path.hang_money {
            tokio::time::sleep(Duration::from_secs(86_400)).await;
        }
        tokio::time::sleep(self.path.latency).await;
        let response = if Instant::now() > expires {
            self.reject(IlpErrorCode::R00_TRANSFER_TIMED_OUT, CONNECTOR, "expired", b"")
        } else {
            self.answer(&prepare, money, expires)
        };
        self.ledger.lock().unwrap().in_flight -= 1;
        response
    }
}

fn payment(net: &Network, amount: Amount) -> Payment {
    Payment {
        destination: IlpAddress::parse(RECEIVER).unwrap(),
        shared_secret: net.secret.clone(),
        source_asset: usd(),
        source_address: None,
        amount,
    }
}

fn rules() -> Rules {
    Rules { slippage: Slippage::ZERO, ..Rules::new(Instant::now() + Duration::from_secs(60)) }
}

/// Runs the payment; returns its outcome and what the hook was told.
async fn run(
    net: &Arc<Network>,
    amount: Amount,
    rules: &Rules,
    progress: Progress,
) -> (Outcome, Vec<PacketPaid>) {
    let paid = Arc::new(Mutex::new(Vec::new()));
    let hook = paid.clone();
    let outcome = pay(net, &payment(net, amount), rules, progress, move |p| {
        hook.lock().unwrap().push(p);
        async {}
    })
    .await
    .unwrap();
    let paid = paid.lock().unwrap().clone();
    (outcome, paid)
}

fn rejects(outcome: &Outcome, code: &str) -> u64 {
    outcome.rejects_by_code.get(code).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn an_exact_source_amount_is_sent_in_packets_the_path_carries() {
    let net = Network::new(Path { connector_max: Some(1000), ..Path::default() });
    let (outcome, paid) = run(&net, Amount::Source(10_500), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered, net.received()), (10_500, 10_500, 10_500));
    assert_eq!(outcome.max_packet_amount, Some(1000));
    assert!(rejects(&outcome, "F08") >= 1 && rejects(&outcome, "F99") >= 1, "{outcome:?}");
    let money = net.money_seen();
    assert!(money.iter().all(|s| s.amount <= 1000 && s.fulfilled), "{money:?}");
    assert_eq!(money.iter().map(|s| s.amount).sum::<u64>(), 10_500);
    assert_eq!(outcome.packets_fulfilled, 11);
    // The hook saw every packet, in order, with running totals.
    assert_eq!(paid.len(), 11);
    assert_eq!(paid.iter().map(|p| p.sent).sum::<u64>(), 10_500);
    assert_eq!(paid.last().unwrap().total, Progress { sent: 10_500, delivered: 10_500 });
    assert!(outcome.close_acknowledged);
    assert_eq!(outcome.destination_asset, Some(usd()));
    let (lower, upper) = outcome.rate.unwrap();
    assert_eq!((lower.to_string(), upper.to_string()), ("1/1".into(), "1001/1000".into()));
}

#[tokio::test(start_paused = true)]
async fn a_quote_tells_the_rate_and_the_path_s_limit_and_pays_nothing() {
    let net = Network::new(Path {
        rate: (1, 550_000),
        connector_max: Some(1_000_000_000),
        asset: Some(mxn()),
        ..Path::default()
    });
    let quote = Rules { quote_only: true, ..rules() };
    let (outcome, paid) = run(&net, Amount::Delivered(12_345), &quote, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Quoted, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered, net.received(), outcome.packets_fulfilled), (0, 0, 0, 0));
    assert!(paid.is_empty() && net.money_seen().is_empty(), "a quote sent money");
    assert_eq!(outcome.destination_asset, Some(mxn()));
    assert_eq!(outcome.max_packet_amount, Some(1_000_000_000));
    let (lower, upper) = outcome.rate.unwrap();
    assert!(lower.numerator() * 550_000 <= lower.denominator(), "{lower}");
    assert!(upper.numerator() * 550_000 > upper.denominator(), "{upper}");
    assert!(outcome.close_acknowledged, "the connection is closed after a quote");
}

#[tokio::test(start_paused = true)]
async fn an_exact_amount_is_delivered_from_usd_to_mxn() {
    // 1 USD (scale 9) is 18.18 MXN (scale 2): a cent costs 550_000 nano-dollars, rounded down.
    let net = Network::new(Path {
        rate: (1, 550_000),
        connector_max: Some(1_000_000_000),
        asset: Some(mxn()),
        ..Path::default()
    });
    let (outcome, paid) = run(&net, Amount::Delivered(12_345), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.delivered, net.received()), (12_345, 12_345));
    assert_eq!(outcome.destination_asset, Some(mxn()));
    // Every cent cost at least its price; the floors lost less than a cent per packet.
    let money = net.money_seen();
    let fulfilled: Vec<&Seen> = money.iter().filter(|s| s.fulfilled).collect();
    assert_eq!(outcome.sent, fulfilled.iter().map(|s| s.amount).sum::<u64>());
    assert!(outcome.sent >= 12_345 * 550_000);
    assert!(outcome.sent < 12_345 * 550_000 + fulfilled.len() as u64 * 550_000, "{}", outcome.sent);
    assert!(fulfilled.iter().all(|s| s.amount <= 1_000_000_000));
    assert_eq!(paid.iter().map(|p| p.delivered).sum::<u64>(), 12_345);
    // The real rate lies in the bounds: lower <= 1/550_000 < upper.
    let (lower, upper) = outcome.rate.unwrap();
    assert!(lower.numerator() * 550_000 <= lower.denominator(), "{lower}");
    assert!(upper.numerator() * 550_000 > upper.denominator(), "{upper}");
}

#[tokio::test(start_paused = true)]
async fn a_source_amount_with_an_odd_remainder_is_sent_whole_where_small_amounts_round_to_nothing() {
    // A connector that refuses what converts to nothing (R01): 1 USD and 5 nano-dollars must not
    // end in a packet of 5. Test packets that round to nothing are not sent again.
    let net = Network::new(Path {
        rate: (1, 550_000),
        connector_max: Some(1_000_000_000),
        asset: Some(mxn()),
        ..Path::default()
    });
    let (outcome, _) = run(&net, Amount::Source(1_000_000_005), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!(outcome.sent, 1_000_000_005);
    assert_eq!(outcome.delivered, net.received());
    let money: Vec<u64> = net.money_seen().iter().map(|s| s.amount).collect();
    assert_eq!(money, [500_000_003, 500_000_002], "evenly, in two packets");
    // 1, 10, 100, 1000, 10^4, 10^5 round to nothing, once each.
    assert_eq!(rejects(&outcome, "R01"), 6, "{outcome:?}");
}

#[tokio::test(start_paused = true)]
async fn an_exact_amount_is_delivered_when_the_rate_scales_up_and_never_exceeded() {
    // The reverse: a MXN cent (scale 2) is 550_000 nano-dollars (scale 9).
    let path = Path { rate: (550_000, 1), connector_max: Some(50), asset: Some(usd()), ..Path::default() };
    let net = Network::new(path.clone());
    let (outcome, _) = run(&net, Amount::Delivered(123 * 550_000), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered, net.received()), (123, 67_650_000, 67_650_000));

    // One nano-dollar more cannot be delivered exactly: the payment stops short, never over.
    let net = Network::new(path);
    let (outcome, _) = run(&net, Amount::Delivered(123 * 550_000 + 1), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::RemainderUnreachable { remaining: 1 }, "{outcome:?}");
    assert_eq!((outcome.delivered, net.received()), (67_650_000, 67_650_000));
}

#[tokio::test(start_paused = true)]
async fn a_rafiki_like_receiver_answers_probes_f99_with_empty_messages_and_f08() {
    // Rafiki's connector refuses F08 in front of its receiver, past 500 MXN cents.
    let net = Network::new(Path {
        rate: (1, 550_000),
        receiver_max: Some(500),
        asset: Some(mxn()),
        rafiki: true,
        ..Path::default()
    });
    let (outcome, _) = run(&net, Amount::Source(2_000_000_000), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!(outcome.sent, 2_000_000_000);
    assert_eq!(outcome.delivered, net.received());
    let money = net.money_seen();
    assert!(money.iter().all(|s| s.arrived.is_some_and(|a| a <= 500)), "{money:?}");
    assert!(rejects(&outcome, "F08") >= 1 && rejects(&outcome, "F99") >= 1, "{outcome:?}");
    // F08 data from the far end is in receiver units: scaled back, the limit delivers 500.
    let limit = outcome.max_packet_amount.unwrap();
    assert_eq!(limit / 550_000, 500, "{limit}");
    assert!(outcome.close_acknowledged, "Rafiki echoes the close in an F99");
}

#[tokio::test(start_paused = true)]
async fn temporary_and_relative_rejects_are_retried_with_backoff_at_the_same_amount() {
    let net = Network::new(Path::default());
    net.fail(Which::Money, IlpErrorCode::T04_INSUFFICIENT_LIQUIDITY, 1);
    net.fail(Which::Money, IlpErrorCode::T00_INTERNAL_ERROR, 1);
    net.fail(Which::Money, IlpErrorCode::R00_TRANSFER_TIMED_OUT, 1);
    let rules = Rules { retry_wait_first_ms: 100, retry_wait_max_ms: 1000, ..rules() };
    let started = Instant::now();
    let (outcome, _) = run(&net, Amount::Source(3000), &rules, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, net.received()), (3000, 3000));
    for code in ["T04", "T00", "R00"] {
        assert_eq!(rejects(&outcome, code), 1, "{code}: {outcome:?}");
    }
    let money = net.money_seen();
    assert_eq!(money.iter().map(|s| s.amount).collect::<Vec<_>>(), [3000; 4], "the same amount each time");
    // Waits of 100, 200 and 400 ms (each up to a quarter more), between the attempts.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(700) && elapsed < Duration::from_millis(1200), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_final_reject_stops_the_payment() {
    let net = Network::new(Path { connector_max: Some(1000), ..Path::default() });
    net.fail(Which::Money, IlpErrorCode::F02_UNREACHABLE, 1);
    let rules = Rules { packets_in_flight_max: 1, ..rules() };
    let (outcome, _) = run(&net, Amount::Source(3000), &rules, Progress::default()).await;
    let StopReason::Rejected { code, triggered_by, .. } = &outcome.stop else { panic!("{outcome:?}") };
    assert_eq!((code.as_str(), triggered_by.as_str()), ("F02", CONNECTOR));
    assert_eq!((outcome.sent, net.received()), (0, 0));
    assert_eq!(net.money_seen().len(), 1, "nothing sent after it");
}

#[tokio::test(start_paused = true)]
async fn a_rate_past_the_slippage_bound_stops_the_payment_without_paying_at_it() {
    // Probed at 1:1; money then arrives at 0.95, more than the 1 % allowed: all refused.
    let net = Network::new(Path {
        connector_max: Some(1000),
        rate_change: Some((0, (95, 100))),
        ..Path::default()
    });
    let rules = Rules { slippage: Slippage::parse("0.01").unwrap(), ..rules() };
    let (outcome, _) = run(&net, Amount::Source(10_000), &rules, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::InsufficientExchangeRate, "{outcome:?}");
    assert_eq!((outcome.sent, net.received()), (0, 0));

    // The rate falls after three packets: those three are all that is paid.
    let net = Network::new(Path {
        connector_max: Some(1000),
        rate_change: Some((3, (95, 100))),
        ..Path::default()
    });
    let one_at_a_time = Rules { packets_in_flight_max: 1, ..rules.clone() };
    let (outcome, _) = run(&net, Amount::Source(10_000), &one_at_a_time, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::InsufficientExchangeRate, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered, net.received()), (3000, 3000, 3000));

    // Within the slippage the payment completes, each packet at no less than its minimum.
    let net = Network::new(Path {
        connector_max: Some(1000),
        rate_change: Some((0, (995, 1000))),
        ..Path::default()
    });
    let (outcome, _) = run(&net, Amount::Source(10_000), &rules, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered), (10_000, 9950));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_the_payment_and_no_packet_outlives_it() {
    let net =
        Network::new(Path { connector_max: Some(100), latency: Duration::from_secs(2), ..Path::default() });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let rules = Rules { deadline, packets_in_flight_max: 2, ..rules() };
    let (outcome, _) = run(&net, Amount::Source(100_000), &rules, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Deadline, "{outcome:?}");
    assert!(outcome.sent > 0 && outcome.sent < 100_000, "{outcome:?}");
    assert_eq!(outcome.sent, net.received());
    let seen = net.seen();
    assert!(
        seen.iter().all(|s| s.expires <= deadline + Duration::from_millis(5)),
        "a Prepare expires after the deadline"
    );
    assert!(started.elapsed() <= Duration::from_secs(12), "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn the_receiver_closing_the_connection_stops_the_payment() {
    let net = Network::new(Path { connector_max: Some(1000), close_at: Some(5000), ..Path::default() });
    let rules = Rules { packets_in_flight_max: 1, ..rules() };
    let (outcome, _) = run(&net, Amount::Source(10_000), &rules, Progress::default()).await;
    let StopReason::ClosedByReceiver { code, message } = &outcome.stop else { panic!("{outcome:?}") };
    assert_eq!((*code, message.as_str()), (ErrorCode::NoError, "enough"));
    assert_eq!((outcome.sent, net.received()), (5000, 5000));
}

#[tokio::test(start_paused = true)]
async fn a_resumed_payment_sends_only_what_is_left() {
    let net = Network::new(Path { connector_max: Some(1000), ..Path::default() });
    let rules = Rules { packets_in_flight_max: 1, ..rules() };
    // The first run is cut short (its future dropped, as by a crash) after its third packet; its
    // hook recorded the totals.
    let recorded = Arc::new(Mutex::new(Progress::default()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let (hook_record, hook_stop) = (recorded.clone(), stop.clone());
    let first_payment = payment(&net, Amount::Source(10_000));
    let first = pay(&net, &first_payment, &rules, Progress::default(), move |p| {
        *hook_record.lock().unwrap() = p.total;
        if p.total.sent >= 3000 {
            hook_stop.notify_one();
        }
        async {}
    });
    tokio::select! {
        _ = first => panic!("the first run should have been cut short"),
        _ = stop.notified() => {}
    }
    let progress = *recorded.lock().unwrap();
    assert_eq!(progress, Progress { sent: 3000, delivered: 3000 });
    let money_before = net.money_seen().len();

    let (outcome, paid) = run(&net, Amount::Source(10_000), &rules, progress).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered), (10_000, 10_000), "totals include the first run's");
    assert_eq!(net.received(), 10_000, "nothing paid twice");
    let second: u64 = net.money_seen()[money_before..].iter().filter(|s| s.fulfilled).map(|s| s.amount).sum();
    assert_eq!(second, 7000);
    assert_eq!(paid.first().unwrap().total, Progress { sent: 4000, delivered: 4000 });
}

#[tokio::test(start_paused = true)]
async fn a_finished_payment_resumed_sends_nothing() {
    let net = Network::new(Path::default());
    let (outcome, _) = run(&net, Amount::Source(500), &rules(), Progress { sent: 500, delivered: 490 }).await;
    assert_eq!((outcome.stop, outcome.packets_sent), (StopReason::Completed, 0));
    assert_eq!((outcome.sent, outcome.delivered), (500, 490));
    assert!(net.seen().is_empty());
}

#[tokio::test(start_paused = true)]
async fn packets_max_bounds_every_prepare() {
    let net = Network::new(Path { connector_max: Some(1000), ..Path::default() });
    let rules = Rules { packets_max: 5, ..rules() };
    let (outcome, _) = run(&net, Amount::Source(10_000), &rules, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::PacketsMax, "{outcome:?}");
    assert_eq!((outcome.packets_sent, net.seen().len()), (5, 5), "the close included");
}

#[tokio::test(start_paused = true)]
async fn packets_in_flight_never_exceed_the_max() {
    let net = Network::new(Path {
        connector_max: Some(1000),
        latency: Duration::from_millis(100),
        ..Path::default()
    });
    let rules = Rules { packets_in_flight_max: 3, ..rules() };
    let (outcome, _) = run(&net, Amount::Source(20_000), &rules, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!(net.ledger.lock().unwrap().in_flight_max, 3);
}

#[tokio::test(start_paused = true)]
async fn a_delivered_amount_needs_the_receivers_asset_and_a_source_amount_does_not() {
    let net = Network::new(Path { asset: None, ..Path::default() });
    let (outcome, _) = run(&net, Amount::Delivered(100), &rules(), Progress::default()).await;
    assert_eq!((outcome.stop, outcome.sent), (StopReason::DestinationAssetUnknown, 0));
    let (outcome, _) = run(&net, Amount::Source(100), &rules(), Progress::default()).await;
    assert_eq!((outcome.stop, outcome.sent, outcome.destination_asset), (StopReason::Completed, 100, None));
}

#[tokio::test(start_paused = true)]
async fn a_money_packet_never_answered_stops_the_payment_in_doubt() {
    let net = Network::new(Path { hang_money: true, ..Path::default() });
    let (outcome, _) = run(&net, Amount::Source(1000), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::OutcomeUnknown, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.in_doubt), (0, 1000));
}

#[tokio::test(start_paused = true)]
async fn the_receivers_stream_max_money_is_respected() {
    let net = Network::new(Path { connector_max: Some(1000), receive_max: Some(5000), ..Path::default() });
    let (outcome, _) = run(&net, Amount::Source(10_000), &rules(), Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::ReceiveMax { receivable: 0 }, "{outcome:?}");
    assert_eq!((outcome.sent, net.received()), (5000, 5000));
    // A delivered amount above what the receiver takes stops once the receiver has said so.
    let net = Network::new(Path { connector_max: Some(1000), receive_max: Some(5000), ..Path::default() });
    let one_at_a_time = Rules { packets_in_flight_max: 1, ..rules() };
    let (outcome, _) = run(&net, Amount::Delivered(8000), &one_at_a_time, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::ReceiveMax { receivable: 4000 }, "{outcome:?}");
    assert_eq!(outcome.delivered, 1000);
}

#[tokio::test(start_paused = true)]
async fn a_probe_nobody_answers_fails_within_its_attempts() {
    let net = Network::new(Path::default());
    net.fail(Which::Probes, IlpErrorCode::T01_PEER_UNREACHABLE, 1000);
    let rules = Rules { probe_attempts_max: 5, retry_wait_max_ms: 100, ..rules() };
    let (outcome, _) = run(&net, Amount::Source(1000), &rules, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::RateProbeFailed, "{outcome:?}");
    assert_eq!((outcome.packets_sent, outcome.sent), (5, 0));
}

#[test]
fn slippage_is_read_exactly() {
    assert_eq!(Slippage::parse("0.01").unwrap().as_fraction(), (1, 100));
    assert_eq!(Slippage::parse("0").unwrap().as_fraction(), (0, 1));
    assert_eq!(Slippage::parse("1").unwrap().as_fraction(), (1, 1));
    assert_eq!(
        Slippage::parse("0.000000000000000001").unwrap().as_fraction(),
        (1, 1_000_000_000_000_000_000)
    );
    assert_eq!(Slippage::parse("1.5"), Err(SlippageError::AboveOne));
    assert_eq!(Slippage::parse("99999999999999999999"), Err(SlippageError::AboveOne));
    for bad in ["", ".5", "5.", "-0.1", "0.0000000000000000001", "1e-3", " 0.1", "0,1"] {
        assert_eq!(Slippage::parse(bad), Err(SlippageError::Syntax), "{bad:?}");
    }
    assert_eq!(Slippage::new(1, 0), Err(SlippageError::Denominator));
    assert_eq!(Slippage::new(2, 1), Err(SlippageError::AboveOne));
}

#[tokio::test]
async fn rules_that_allow_no_packet_are_refused_before_sending() {
    let net = Network::new(Path::default());
    let rules = Rules { packets_in_flight_max: 0, ..rules() };
    let result =
        pay(&net, &payment(&net, Amount::Source(1)), &rules, Progress::default(), |_| async {}).await;
    assert_eq!(result.unwrap_err(), RulesError::NoPacketsInFlight);
    let rules = Rules { packet_expiry_ms: 0, ..Rules::new(Instant::now()) };
    let result =
        pay(&net, &payment(&net, Amount::Source(1)), &rules, Progress::default(), |_| async {}).await;
    assert_eq!(result.unwrap_err(), RulesError::NoExpiry);
    assert!(net.seen().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_payment_that_carries_out_a_quote_sends_no_test_packets() {
    // 1 USD (scale 9) is 18.24 MXN (scale 2) at the connector: the quote's probe saw 1824.
    let path = Path { rate: (1824, 1_000_000_000), asset: Some(mxn()), ..Path::default() };
    let net = Network::new(path.clone());
    let quote = Rules { quote_only: true, ..rules() };
    let (quoted, _) = run(&net, Amount::Source(1_000_000_000), &quote, Progress::default()).await;
    let (lower, _) = quoted.rate.unwrap();
    let probed = (1_000_000_000, u64::try_from(lower.floor_of(1_000_000_000)).unwrap());
    assert_eq!(probed.1, 1824);

    let net = Network::new(path);
    let carry_out = Rules { probed: Some(probed), ..rules() };
    let (outcome, paid) = run(&net, Amount::Source(1_000_000_000), &carry_out, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered, net.received()), (1_000_000_000, 1824, 1824));
    // One money packet, then the close: no probe at all.
    let seen = net.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].money && seen[0].fulfilled && !seen[1].money, "{seen:?}");
    assert_eq!((outcome.packets_fulfilled, outcome.packets_rejected, paid.len()), (1, 0, 1));
    assert!(outcome.close_acknowledged);
}

#[tokio::test(start_paused = true)]
async fn a_quote_s_rate_fallen_since_stops_the_payment_before_it_pays_less() {
    // The quote saw 1824 for 1 USD; the rate is now 1 % lower, and no slippage is allowed.
    let path = Path { rate: (1805, 1_000_000_000), asset: Some(mxn()), ..Path::default() };
    let net = Network::new(path);
    let carry_out = Rules { probed: Some((1_000_000_000, 1824)), ..rules() };
    let (outcome, paid) = run(&net, Amount::Source(1_000_000_000), &carry_out, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::InsufficientExchangeRate, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered, net.received()), (0, 0, 0));
    assert!(paid.is_empty());
    assert_eq!(net.money_seen().len(), 1, "one money packet refused, none sent after it");
}

#[tokio::test(start_paused = true)]
async fn a_quote_s_rate_is_paid_in_packets_the_path_carries_and_a_delivered_amount_probes_anyway() {
    let path = Path { connector_max: Some(1000), ..Path::default() };
    let net = Network::new(path.clone());
    let carry_out = Rules { probed: Some((10_500, 10_500)), ..rules() };
    let (outcome, _) = run(&net, Amount::Source(10_500), &carry_out, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, net.received()), (10_500, 10_500));
    assert_eq!(outcome.max_packet_amount, Some(1000));
    // Only the first money packet was too large: no test packet went.
    assert_eq!((rejects(&outcome, "F08"), rejects(&outcome, "F99")), (1, 0), "{outcome:?}");

    let net = Network::new(path.clone());
    let (outcome, _) = run(&net, Amount::Delivered(500), &carry_out, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert!(rejects(&outcome, "F99") >= 1, "a delivered amount probes: {outcome:?}");
}

#[tokio::test(start_paused = true)]
async fn a_quote_that_saw_nothing_delivered_is_no_rate_and_the_payment_probes() {
    // At 1/2, one unit delivers nothing: a minimum of 0 from it would accept any rate at all.
    let net = Network::new(Path { rate: (1, 2), ..Path::default() });
    let carry_out = Rules { probed: Some((1, 0)), ..rules() };
    let (outcome, _) = run(&net, Amount::Source(1000), &carry_out, Progress::default()).await;
    assert_eq!(outcome.stop, StopReason::Completed, "{outcome:?}");
    assert_eq!((outcome.sent, outcome.delivered, net.received()), (1000, 500, 500));
    assert!(rejects(&outcome, "F99") >= 1, "it probed: {outcome:?}");
    assert!(net.money_seen().iter().all(|s| s.fulfilled), "every money packet at the probed rate");
}
