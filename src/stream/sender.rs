//! The sending side of STREAM (RFC 0029): one payment to one receiver, through a [`Transport`]
//! the caller implements (the node's own packet path, or ILP-over-HTTP to an upstream).
//!
//! [`pay`] runs the payment, in the order @interledger/pay does:
//! 1. **Probe.** Unfulfillable test packets (a random condition: no money can move): the first,
//!    of 0, carries `ConnectionNewAddress` and our `ConnectionAssetDetails`, and the receiver's
//!    reply tells its asset; the others (powers of ten down to 1, capped by what the payment can
//!    send, [`probe`]) come back as F99 with the amount that arrived, which brackets the rate
//!    exactly ([`rate`]), or as F08 with the limit of a hop, which sizes packets ([`max_packet`]).
//!    Rafiki's receiver answers F99 with an empty message and intermediaries answer F08 and T
//!    codes while this goes on; all of it is expected. A payment that carries out a quote skips
//!    this ([`Rules::probed`]): the quote's probe told the rate, and its first money packets
//!    carry the connection's frames.
//! 2. **Pay.** Fulfillable packets on stream 1, each at most the path's limit, its minimum
//!    `floor(source × lower rate × (1 − slippage))` ([`amount`] sizes them for an exact source
//!    or an exact delivered amount). Each reply's amount (what really arrived) goes into the
//!    totals and narrows the rate again.
//! 3. **Close.** A last unfulfillable packet of 0 with `ConnectionClose`, best effort.
//!
//! What comes back, and what is done about it:
//! - **T** and **R** codes (no liquidity, a timeout, an expiry too short): the same amount again,
//!   with a fresh expiry, after a jittered wait that doubles up to a cap ([`Backoff`]); nothing
//!   new is sent in the meantime.
//! - **F08**: the packet was too large for a hop; the limit goes down and the money is resent in
//!   smaller packets.
//! - **F99** from the receiver: a packet that delivered less than its minimum means the rate fell
//!   past the slippage bound, and the payment stops before paying at that rate. Its frames are
//!   read: a `ConnectionClose` (or a close of our stream) stops the payment, a `StreamMaxMoney`
//!   bounds what is still sent. Other F99s are counted and stop the payment past a bound.
//! - any other **F** code: the payment stops with it.
//!
//! Limits: never more than `packets_in_flight_max` Prepares in flight, `packets_max` in all; no
//! Prepare expires after the deadline, and at the deadline the payment stops. A packet whose
//! answer does not come within its expiry and a grace is given up: its money is reported in
//! doubt, and the payment stops (sending on could pay twice).
//!
//! Resuming: after each fulfilled packet, the caller's hook gets the packet's amounts and the new
//! totals, before anything else is sent; a later run given those totals as its [`Progress`] sends
//! only what is left. Packets in flight at a crash are the caller's to reconcile (its ledger
//! knows whether their source amounts were debited).
//!
//! Money is `u64` with exact rationals in between ([`Ratio`]); no float is used anywhere.
//!
//! Layer 3, with the rest of [`crate::stream`]: imports [`crate::packet`], [`crate::backoff`]
//! and [`crate::limits`], and [`crate::account`]'s constant-time comparison.

mod amount;
mod max_packet;
mod probe;
mod rate;

pub use rate::Ratio;

use super::crypto::{random_condition, CryptoError, SharedSecret, StreamKeys};
use super::frame::{ErrorCode, Frame};
use super::packet::{PacketType, StreamPacket};
use crate::account::constant_time_eq;
use crate::backoff::Backoff;
use crate::limits;
use crate::packet::{ErrorCode as IlpErrorCode, IlpAddress, Prepare, Reject, Response};
use amount::{Amounts, Step as AmountStep};
use futures::stream::{FuturesUnordered, StreamExt};
use max_packet::MaxPacket;
use probe::{Answer, Probe, Step as ProbeStep};
use rate::RateBounds;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// The stream every money packet is on: the first a client may open (RFC 0029 § 3.3).
const STREAM_ID: u64 = 1;

/// How the sender's Prepares leave. The caller maps its own transport's failures to Rejects
/// (the node's packet path already does: a peer that is down is a T01, no answer an R00).
pub trait Transport: Send + Sync {
    fn send(&self, prepare: Prepare) -> impl Future<Output = Response> + Send;
}

/// An asset: its code and scale (an amount `a` is worth `a / 10^scale` units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetDetails {
    pub code: String,
    pub scale: u8,
}

/// What the payment must achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    /// Send exactly this, in the sender's units; the receiver gets what it converts to.
    Source(u64),
    /// Deliver exactly this, in the receiver's units (its asset must be known from its replies).
    Delivered(u64),
}

/// One payment: to whom, from which asset, how much.
#[derive(Debug, Clone)]
pub struct Payment {
    pub destination: IlpAddress,
    pub shared_secret: SharedSecret,
    pub source_asset: AssetDetails,
    /// Sent in `ConnectionNewAddress`. `None` sends it empty, as @interledger/pay does: the
    /// receiver then has no address to send anything back to, which a payer does not need.
    pub source_address: Option<IlpAddress>,
    pub amount: Amount,
}

/// An exact fraction in `[0, 1]`: how far below the probed rate a packet may deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slippage {
    numerator: u64,
    denominator: u64,
}

/// Why a slippage is not a fraction in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlippageError {
    #[error("a slippage's denominator is at least 1")]
    Denominator,
    #[error("a slippage is at most 1")]
    AboveOne,
    #[error(
        "a slippage is a decimal such as \"0.01\": digits, an optional point and at most 18 more digits"
    )]
    Syntax,
}

impl Slippage {
    /// The probed rate must hold exactly.
    pub const ZERO: Slippage = Slippage { numerator: 0, denominator: 1 };

    pub fn new(numerator: u64, denominator: u64) -> Result<Slippage, SlippageError> {
        if denominator == 0 {
            return Err(SlippageError::Denominator);
        }
        if numerator > denominator {
            return Err(SlippageError::AboveOne);
        }
        Ok(Slippage { numerator, denominator })
    }

    /// A decimal string, read exactly: `"0.005"` is 5/1000.
    pub fn parse(text: &str) -> Result<Slippage, SlippageError> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > 18
            || text.ends_with('.')
        {
            return Err(SlippageError::Syntax);
        }
        let denominator = 10u64.pow(fraction.len() as u32);
        let whole: u64 = whole.parse().map_err(|_| SlippageError::AboveOne)?;
        let fraction: u64 =
            if fraction.is_empty() { 0 } else { fraction.parse().map_err(|_| SlippageError::Syntax)? };
        let numerator = whole
            .checked_mul(denominator)
            .and_then(|w| w.checked_add(fraction))
            .ok_or(SlippageError::AboveOne)?;
        Slippage::new(numerator, denominator)
    }

    pub fn as_fraction(&self) -> (u64, u64) {
        (self.numerator, self.denominator)
    }
}

impl std::str::FromStr for Slippage {
    type Err = SlippageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Slippage::parse(s)
    }
}

/// The payment's limits, units last.
#[derive(Debug, Clone)]
pub struct Rules {
    pub slippage: Slippage,
    /// No Prepare expires after this; the payment stops here.
    pub deadline: Instant,
    /// Each Prepare's expiry from when it is sent, cut to the deadline.
    pub packet_expiry_ms: u64,
    pub packets_in_flight_max: usize,
    /// The wait after a T or R Reject, doubling (jittered) up to the max.
    pub retry_wait_first_ms: u64,
    pub retry_wait_max_ms: u64,
    /// Prepares sent in all, test packets and the close included.
    pub packets_max: u64,
    /// Test packets sent while probing, retries included.
    pub probe_attempts_max: u32,
    /// F99s to money packets that are not about the rate (the receiver refused for its own
    /// reasons, or a connector's F99 nobody could read) tolerated before stopping.
    pub refusals_max: u32,
    /// The first Prepare's sequence number is this plus one. A payment resumed over the same
    /// connection must start above every sequence an earlier run used: a receiver refuses the
    /// same sequence twice (ThitsaX's does: a replay).
    pub sequence_after: u64,
    /// Stop once the probe has told the rate and the path's limit: a quote (what the receiver
    /// would get, in [`Outcome::rate`]), nothing paid.
    pub quote_only: bool,
    /// A reply an earlier probe of this path got, `(sent, delivered)`: the quote a payment
    /// carries out. A payment of a source amount then sends no test packets: it pays at no less
    /// than `delivered / sent` less the slippage, what the quote promised, so a rate fallen since
    /// stops it ([`StopReason::InsufficientExchangeRate`]) rather than paying less. (A payment
    /// of a delivered amount probes all the same: it needs the receiver's asset.)
    pub probed: Option<(u64, u64)>,
}

impl Rules {
    /// The defaults of [`crate::limits`], with `deadline`.
    pub fn new(deadline: Instant) -> Rules {
        Rules {
            slippage: Slippage::parse(limits::STREAM_SLIPPAGE).expect("the default slippage is valid"),
            deadline,
            packet_expiry_ms: limits::STREAM_PACKET_EXPIRY_MS,
            packets_in_flight_max: limits::STREAM_PACKETS_IN_FLIGHT_MAX,
            retry_wait_first_ms: limits::STREAM_RETRY_WAIT_FIRST_MS,
            retry_wait_max_ms: limits::STREAM_RETRY_WAIT_MAX_MS,
            packets_max: limits::STREAM_PACKETS_MAX,
            probe_attempts_max: limits::STREAM_PROBE_ATTEMPTS_MAX,
            refusals_max: limits::STREAM_REFUSALS_MAX,
            sequence_after: 0,
            quote_only: false,
            probed: None,
        }
    }

    fn check(&self) -> Result<(), RulesError> {
        if self.packets_in_flight_max == 0 {
            return Err(RulesError::NoPacketsInFlight);
        }
        if self.packet_expiry_ms == 0 {
            return Err(RulesError::NoExpiry);
        }
        Ok(())
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.retry_wait_first_ms),
            Duration::from_millis(self.retry_wait_max_ms),
        )
    }
}

/// Rules under which no payment can be made; nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("packets_in_flight_max is 0: no packet could ever be sent")]
    NoPacketsInFlight,
    #[error("packet_expiry_ms is 0: every packet would be expired when sent")]
    NoExpiry,
}

/// Totals of a payment: sent in the sender's units, delivered in the receiver's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub sent: u64,
    pub delivered: u64,
}

/// One fulfilled packet, told to the caller's hook before anything else is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketPaid {
    pub sent: u64,
    pub delivered: u64,
    /// The payment's totals with this packet (an earlier run's progress included).
    pub total: Progress,
}

/// Why the payment stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The exact amount was sent or delivered.
    Completed,
    /// [`Rules::quote_only`]: the probe told the rate; nothing was paid.
    Quoted,
    Deadline,
    /// The receiver closed the connection or our stream.
    ClosedByReceiver {
        code: ErrorCode,
        message: String,
    },
    /// A final Reject (not F08, not F99) from the receiver or a connector.
    Rejected {
        code: String,
        triggered_by: String,
        message: String,
    },
    /// The rate fell past the slippage bound: a packet would deliver less than its minimum.
    InsufficientExchangeRate,
    /// No test packet got an authentic reply, or every one delivered nothing.
    RateProbeFailed,
    /// A delivered amount needs the receiver's asset, and its replies never told it.
    DestinationAssetUnknown,
    /// An F08 said a hop takes nothing at all.
    NoPathCapacity,
    /// More F99s than `refusals_max`.
    ReceiverRefused,
    /// The receiver will take no more than this (its units) on the stream.
    ReceiveMax {
        receivable: u64,
    },
    /// A delivered amount: even one source unit could deliver more than what is left.
    RemainderUnreachable {
        remaining: u64,
    },
    /// A Fulfill without an authentic reply, or claiming less than the packet's minimum; or a
    /// test packet (which nobody can fulfil) fulfilled.
    ReceiverProtocolViolation,
    /// A Fulfill whose fulfillment is not our packet's: the transport let it through. Its money
    /// is counted as paid (the caller's ledger has likely debited it).
    InvalidFulfillment,
    /// A packet's answer never came (its money is in [`Outcome::in_doubt`]).
    OutcomeUnknown,
    PacketsMax,
    /// The system's random number generator failed.
    Crypto(CryptoError),
}

/// What the payment did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Totals, the resumed progress included.
    pub sent: u64,
    pub delivered: u64,
    /// Prepares this run sent: test packets, money packets, the close.
    pub packets_sent: u64,
    pub packets_fulfilled: u64,
    /// Rejects to every packet but the close, and by code (`"F08"`).
    pub packets_rejected: u64,
    pub rejects_by_code: BTreeMap<String, u64>,
    pub stop: StopReason,
    /// The rate's bounds at the end (delivered per source unit): `lower <= rate < upper`.
    pub rate: Option<(Ratio, Ratio)>,
    /// The path's limit an F08 taught, in source units.
    pub max_packet_amount: Option<u64>,
    pub destination_asset: Option<AssetDetails>,
    /// Source amount of packets whose answer never came: they may have been paid.
    pub in_doubt: u64,
    /// Whether the receiver answered the close.
    pub close_acknowledged: bool,
}

impl Outcome {
    pub fn is_completed(&self) -> bool {
        self.stop == StopReason::Completed
    }
}

/// Runs one payment to its end. `progress` is what an earlier run of the same payment recorded
/// (zero for a new one); `on_paid` is awaited after each fulfilled packet, before anything else
/// is sent, so the caller can record the totals. Errors only for rules under which nothing can
/// be sent; every other end is an [`Outcome`].
pub async fn pay<T, F, Fut>(
    transport: &T,
    payment: &Payment,
    rules: &Rules,
    progress: Progress,
    mut on_paid: F,
) -> Result<Outcome, RulesError>
where
    T: Transport,
    F: FnMut(PacketPaid) -> Fut + Send,
    Fut: Future<Output = ()> + Send,
{
    rules.check()?;
    let mut run = Run::new(payment, rules, progress);
    let mut in_flight = FuturesUnordered::new();
    loop {
        // Send what may be sent now.
        while run.stop.is_none() && in_flight.len() < rules.packets_in_flight_max {
            let now = Instant::now();
            if now >= rules.deadline {
                run.stop = Some(StopReason::Deadline);
                break;
            }
            if run.retry_at.is_some_and(|at| now < at) {
                break;
            }
            match run.next() {
                Next::Send(plan) => match run.seal(plan, now) {
                    Ok((sent, prepare, answer_by)) => {
                        in_flight.push(exchange(transport, sent, prepare, answer_by))
                    }
                    Err(reason) => run.stop = Some(reason),
                },
                Next::Wait => break,
                Next::Stop(reason) => run.stop = Some(reason),
            }
        }
        if in_flight.is_empty() && run.stop.is_some() {
            break;
        }
        // Then wait for an answer, the end of a backoff, or the deadline. (With nothing in flight
        // and nothing stopped, a plan only waits for a backoff.)
        debug_assert!(!in_flight.is_empty() || run.stop.is_some() || run.retry_at.is_some());
        let retry_at =
            run.retry_at.filter(|_| run.stop.is_none() && in_flight.len() < rules.packets_in_flight_max);
        tokio::select! {
            Some((sent, answer)) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(paid) = run.answered(sent, answer) {
                    on_paid(paid).await;
                }
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or(rules.deadline)), if retry_at.is_some() => {
                run.retry_at = None;
            }
            _ = tokio::time::sleep_until(rules.deadline), if run.stop.is_none() => {
                run.stop = Some(StopReason::Deadline);
            }
        }
    }
    run.close(transport).await;
    Ok(run.outcome())
}

/// One Prepare's exchange, given up at `answer_by` (its expiry and a grace).
async fn exchange<T: Transport>(
    transport: &T,
    sent: Sent,
    prepare: Prepare,
    answer_by: Instant,
) -> (Sent, Option<Response>) {
    let answer = tokio::time::timeout_at(answer_by, transport.send(prepare)).await.ok();
    (sent, answer)
}

/// What a Prepare is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An unfulfillable test packet of the probe.
    Probe,
    Money,
    Close,
}

/// The next Prepare, before it is sealed.
#[derive(Debug)]
struct Plan {
    kind: Kind,
    source: u64,
    /// The STREAM `prepare_amount`: the least the receiver may accept.
    min: u64,
    /// The most it may deliver (money packets; 0 otherwise).
    high: u64,
    frames: Vec<Frame>,
}

/// A Prepare in flight, and what is needed to read its answer.
#[derive(Debug)]
struct Sent {
    kind: Kind,
    sequence: u64,
    source: u64,
    min: u64,
    high: u64,
    /// The fulfillment a money packet's Fulfill must carry.
    fulfillment: Option<[u8; 32]>,
}

enum Next {
    Send(Plan),
    Wait,
    Stop(StopReason),
}

enum Phase {
    Probe(Probe),
    /// Paying, at no less than `min_rate` (the probe's lower bound) less the slippage.
    Money {
        min_rate: Ratio,
    },
}

/// A payment's state between packets.
struct Run<'p> {
    payment: &'p Payment,
    rules: &'p Rules,
    keys: StreamKeys,
    phase: Phase,
    amounts: Amounts,
    rate: RateBounds,
    max_packet: MaxPacket,
    destination_asset: Option<AssetDetails>,
    /// An authentic reply has come back: the connection's frames need not be sent again.
    established: bool,
    backoff: Backoff,
    /// Nothing new is sent before this (a T or R Reject's backoff).
    retry_at: Option<Instant>,
    sequence: u64,
    packets_sent: u64,
    packets_fulfilled: u64,
    packets_rejected: u64,
    rejects_by_code: BTreeMap<String, u64>,
    refusals: u32,
    in_doubt: u64,
    close_acknowledged: bool,
    stop: Option<StopReason>,
}

impl<'p> Run<'p> {
    fn new(payment: &'p Payment, rules: &'p Rules, progress: Progress) -> Run<'p> {
        let amounts = Amounts::new(payment.amount, progress);
        let mut rate = RateBounds::default();
        let phase = match rules.probed {
            // A reply that delivered nothing tells no rate (a minimum of 0 takes anything): probe.
            Some((sent, delivered))
                if !amounts.is_delivery() && sent > 0 && delivered > 0 && !rules.quote_only =>
            {
                rate.observe(sent, delivered);
                Phase::Money { min_rate: rate.lower() }
            }
            _ => Phase::Probe(Probe::new(amounts.probe_cap())),
        };
        // Nothing left to pay: no packet at all.
        let stop = amounts.is_complete().then_some(StopReason::Completed);
        Run {
            payment,
            rules,
            keys: payment.shared_secret.keys(),
            phase,
            amounts,
            rate,
            max_packet: MaxPacket::default(),
            destination_asset: None,
            established: false,
            backoff: rules.backoff(),
            retry_at: None,
            sequence: rules.sequence_after,
            packets_sent: 0,
            packets_fulfilled: 0,
            packets_rejected: 0,
            rejects_by_code: BTreeMap::new(),
            refusals: 0,
            in_doubt: 0,
            close_acknowledged: false,
            stop,
        }
    }

    /// The next Prepare to send, if any may go now: a payment that is over says so even when no
    /// Prepare is left under `packets_max`.
    fn next(&mut self) -> Next {
        match self.plan() {
            Next::Send(_) if self.packets_sent >= self.rules.packets_max => {
                Next::Stop(StopReason::PacketsMax)
            }
            next => next,
        }
    }

    fn plan(&mut self) -> Next {
        if let Phase::Probe(probe) = &mut self.phase {
            match probe.next(&self.max_packet, self.rules.probe_attempts_max) {
                ProbeStep::Send(amount) => return Next::Send(self.test_packet(amount)),
                ProbeStep::Wait => return Next::Wait,
                ProbeStep::Done => match self.probed() {
                    Ok(_) if self.rules.quote_only => return Next::Stop(StopReason::Quoted),
                    Ok(min_rate) => self.phase = Phase::Money { min_rate },
                    Err(reason) => return Next::Stop(reason),
                },
            }
        }
        let Phase::Money { min_rate } = &self.phase else { return Next::Wait };
        let slippage = self.rules.slippage.as_fraction();
        match self.amounts.next(&self.rate, self.max_packet.limit(), min_rate, slippage) {
            AmountStep::Send { source, min, high } => {
                // Without a probe, the first money packets open the connection.
                let mut frames = self.connection_frames();
                frames.push(Frame::StreamMoney { stream_id: STREAM_ID, shares: 1 });
                Next::Send(Plan { kind: Kind::Money, source, min, high, frames })
            }
            AmountStep::Wait => Next::Wait,
            AmountStep::Stop(reason) => Next::Stop(reason),
        }
    }

    /// An unfulfillable packet of `amount`.
    fn test_packet(&self, amount: u64) -> Plan {
        Plan { kind: Kind::Probe, source: amount, min: 0, high: 0, frames: self.connection_frames() }
    }

    /// The connection's frames, until the receiver has answered once.
    fn connection_frames(&self) -> Vec<Frame> {
        if self.established {
            return Vec::new();
        }
        let source_address = self.payment.source_address.as_ref().map(|a| a.to_string()).unwrap_or_default();
        let asset = &self.payment.source_asset;
        vec![
            Frame::ConnectionNewAddress { source_address },
            Frame::ConnectionAssetDetails { asset_code: asset.code.clone(), asset_scale: asset.scale },
        ]
    }

    /// The probe is over: the rate to pay at, or why there is none.
    fn probed(&self) -> Result<Ratio, StopReason> {
        if !self.rate.is_known() || self.rate.lower().numerator() == 0 {
            return Err(StopReason::RateProbeFailed);
        }
        if self.amounts.is_delivery() && self.destination_asset.is_none() {
            return Err(StopReason::DestinationAssetUnknown);
        }
        Ok(self.rate.lower())
    }

    /// Encrypts the plan into a Prepare, expiring at most `packet_expiry_ms` from `now` and never
    /// after the deadline; returns it with the time its answer is given up.
    fn seal(&mut self, plan: Plan, now: Instant) -> Result<(Sent, Prepare, Instant), StopReason> {
        self.sequence += 1;
        let packet = StreamPacket {
            packet_type: PacketType::Prepare,
            sequence: self.sequence,
            prepare_amount: plan.min,
            frames: plan.frames,
        };
        let data = self.keys.encrypt(&packet.encode()).map_err(StopReason::Crypto)?;
        let (condition, fulfillment) = match plan.kind {
            Kind::Money => {
                let fulfillment = self.keys.fulfillment(&data);
                (super::crypto::condition_of(&fulfillment), Some(fulfillment))
            }
            Kind::Probe | Kind::Close => (random_condition().map_err(StopReason::Crypto)?, None),
        };
        let window = Duration::from_millis(self.rules.packet_expiry_ms)
            .min(self.rules.deadline.saturating_duration_since(now));
        let prepare = Prepare::build(
            &self.payment.destination,
            plan.source,
            SystemTime::now() + window,
            &condition,
            &data,
        );
        self.packets_sent += 1;
        if plan.kind == Kind::Money {
            self.amounts.launched(plan.source, plan.high);
        }
        let answer_by = now + window + Duration::from_millis(limits::STREAM_OUTCOME_GRACE_MS);
        let sent = Sent {
            kind: plan.kind,
            sequence: self.sequence,
            source: plan.source,
            min: plan.min,
            high: plan.high,
            fulfillment,
        };
        Ok((sent, prepare, answer_by))
    }

    /// Takes an answer (`None`: none came in time) into account; a fulfilled packet's amounts
    /// for the caller's hook.
    fn answered(&mut self, sent: Sent, answer: Option<Response>) -> Option<PacketPaid> {
        let Some(response) = answer else {
            self.unanswered(&sent);
            return None;
        };
        let (data, expected) = match &response {
            Response::Fulfill(f) => (f.data(), PacketType::Fulfill),
            Response::Reject(r) => (r.data(), PacketType::Reject),
        };
        let reply = self.authentic(&sent, data, expected);
        if sent.kind == Kind::Close {
            self.close_acknowledged = reply.is_some();
            return None;
        }
        if let Some(reply) = &reply {
            self.established = true;
            self.rate.observe(sent.source, reply.prepare_amount);
        }
        let arrived = reply.as_ref().map(|r| r.prepare_amount);
        let paid = match &response {
            Response::Fulfill(fulfill) => Some(self.fulfilled(&sent, fulfill.fulfillment(), arrived)),
            Response::Reject(reject) => {
                self.rejected(&sent, reject, arrived);
                None
            }
        };
        // After the packet's own accounting: a `StreamMaxMoney` already counts the packet.
        if let Some(reply) = &reply {
            self.read_frames(&reply.frames);
        }
        paid
    }

    /// The reply a receiver sealed for this packet: it decrypts, and says it is for this packet's
    /// sequence and travels in this kind of ILP packet.
    fn authentic(&self, sent: &Sent, data: &[u8], expected: PacketType) -> Option<StreamPacket> {
        let plaintext = self.keys.decrypt(data).ok()?;
        let packet = StreamPacket::decode(&plaintext).ok()?;
        (packet.packet_type == expected && packet.sequence == sent.sequence).then_some(packet)
    }

    /// The receiver's asset, limits and closes.
    fn read_frames(&mut self, frames: &[Frame]) {
        for frame in frames {
            match frame {
                Frame::ConnectionAssetDetails { asset_code, asset_scale } => {
                    self.destination_asset =
                        Some(AssetDetails { code: asset_code.clone(), scale: *asset_scale });
                }
                Frame::StreamMaxMoney { stream_id: STREAM_ID, receive_max, total_received } => {
                    self.amounts.receive_max(*receive_max, *total_received);
                }
                Frame::ConnectionClose { code, message }
                | Frame::StreamClose { stream_id: STREAM_ID, code, message, .. } => {
                    self.stop_with(StopReason::ClosedByReceiver { code: *code, message: message.clone() });
                }
                _ => {}
            }
        }
    }

    /// A Fulfill: the money moved. A money packet delivered what its reply says (no less than its
    /// minimum: that is what the receiver agreed to take).
    fn fulfilled(&mut self, sent: &Sent, fulfillment: &[u8; 32], arrived: Option<u64>) -> PacketPaid {
        self.packets_fulfilled += 1;
        self.backoff = self.rules.backoff();
        let delivered = arrived.unwrap_or(0).max(sent.min);
        match sent.kind {
            Kind::Money => self.amounts.released(sent.source, sent.high),
            Kind::Probe => self.probe_answered(sent.source, Answer::Authentic),
            Kind::Close => {}
        }
        self.amounts.paid(sent.source, delivered);
        let valid = sent.fulfillment.is_some_and(|f| constant_time_eq(&f, fulfillment));
        if !valid {
            self.stop_with(match sent.kind {
                Kind::Money => StopReason::InvalidFulfillment,
                Kind::Probe | Kind::Close => StopReason::ReceiverProtocolViolation,
            });
        } else if arrived.is_none_or(|a| a < sent.min) {
            self.stop_with(StopReason::ReceiverProtocolViolation);
        }
        PacketPaid { sent: sent.source, delivered, total: self.amounts.totals() }
    }

    /// A Reject: count it, learn from it, decide whether to go on.
    fn rejected(&mut self, sent: &Sent, reject: &Reject, arrived: Option<u64>) {
        self.packets_rejected += 1;
        let code: [u8; 3] = reject.code().into();
        let name = String::from_utf8_lossy(&code).into_owned();
        *self.rejects_by_code.entry(name.clone()).or_default() += 1;
        if sent.kind == Kind::Money {
            self.amounts.released(sent.source, sent.high);
        }
        let answer = if reject.code() == IlpErrorCode::F08_AMOUNT_TOO_LARGE {
            match self.max_packet.reduce(sent.source, reject.data()) {
                Ok(limit) => Answer::TooLarge(limit),
                Err(max_packet::NoCapacity) => {
                    self.stop_with(StopReason::NoPathCapacity);
                    Answer::TooLarge(None)
                }
            }
        } else if reject.code() == IlpErrorCode::F99_APPLICATION_ERROR {
            self.refused(sent, arrived)
        } else if reject.code() == IlpErrorCode::R01_INSUFFICIENT_SOURCE_AMOUNT {
            // A hop rounds this amount down to nothing: the same amount again cannot help.
            if sent.kind == Kind::Money {
                self.stop_with(self.final_reject(reject, name));
            }
            Answer::TooSmall
        } else if matches!(code[0], b'T' | b'R') {
            // A money packet's amount again after the wait: the next plan computes it afresh,
            // and with nothing else changed it is this packet's. (A test packet waits only if
            // the probe sends it again.)
            if sent.kind == Kind::Money {
                self.back_off();
            }
            Answer::Temporary
        } else {
            self.stop_with(self.final_reject(reject, name));
            Answer::Temporary
        };
        if sent.kind == Kind::Probe {
            self.probe_answered(sent.source, answer);
        }
    }

    fn final_reject(&self, reject: &Reject, code: String) -> StopReason {
        StopReason::Rejected {
            code,
            triggered_by: reject.triggered_by().to_string(),
            message: String::from_utf8_lossy(reject.message()).into_owned(),
        }
    }

    /// Nothing new is sent before the next backoff wait is over.
    fn back_off(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff.next_wait());
    }

    /// An F99. To a test packet it is the expected answer (authentic: the rate was read from it).
    /// To a money packet: less than the minimum arrived (the rate fell past the slippage bound),
    /// or the receiver refused for its own reasons, or someone answered that nobody can read.
    fn refused(&mut self, sent: &Sent, arrived: Option<u64>) -> Answer {
        match (sent.kind, arrived) {
            (Kind::Probe, Some(_)) => Answer::Authentic,
            (Kind::Probe, None) => Answer::Temporary,
            (Kind::Money, Some(a)) if a < sent.min => {
                self.stop_with(StopReason::InsufficientExchangeRate);
                Answer::Temporary
            }
            (Kind::Money, _) | (Kind::Close, _) => {
                self.refusals += 1;
                if self.refusals > self.rules.refusals_max {
                    self.stop_with(StopReason::ReceiverRefused);
                }
                Answer::Temporary
            }
        }
    }

    /// A test packet's answer, for the probe's schedule; a test packet it sends again waits for
    /// a backoff first.
    fn probe_answered(&mut self, amount: u64, answer: Answer) {
        if let Phase::Probe(probe) = &mut self.phase {
            if probe.answered(amount, answer, self.rate.is_known()) {
                self.back_off();
            }
        }
    }

    /// No answer within the packet's expiry and grace. A money packet may have been paid: stop,
    /// and report it in doubt.
    fn unanswered(&mut self, sent: &Sent) {
        match sent.kind {
            Kind::Money => {
                self.amounts.released(sent.source, sent.high);
                self.in_doubt = self.in_doubt.saturating_add(sent.source);
                self.stop_with(StopReason::OutcomeUnknown);
            }
            Kind::Probe => self.probe_answered(sent.source, Answer::Temporary),
            Kind::Close => {}
        }
    }

    /// Keeps the first reason: later ones are consequences.
    fn stop_with(&mut self, reason: StopReason) {
        self.stop.get_or_insert(reason);
    }

    /// Tells the receiver the payment is over, best effort: one unfulfillable packet of 0 with
    /// `ConnectionClose`, if the receiver ever answered and the deadline and `packets_max` allow.
    async fn close<T: Transport>(&mut self, transport: &T) {
        let now = Instant::now();
        let allowed =
            self.established && now < self.rules.deadline && self.packets_sent < self.rules.packets_max;
        if !allowed || matches!(self.stop, Some(StopReason::Crypto(_))) {
            return;
        }
        let (code, message) = match &self.stop {
            Some(StopReason::Completed | StopReason::Quoted) | None => (ErrorCode::NoError, String::new()),
            Some(other) => (ErrorCode::ApplicationError, format!("{other:?}")),
        };
        let frames = vec![Frame::ConnectionClose { code, message }];
        let plan = Plan { kind: Kind::Close, source: 0, min: 0, high: 0, frames };
        if let Ok((sent, prepare, answer_by)) = self.seal(plan, now) {
            let (sent, answer) = exchange(transport, sent, prepare, answer_by).await;
            self.answered(sent, answer);
        }
    }

    fn outcome(self) -> Outcome {
        let totals = self.amounts.totals();
        Outcome {
            sent: totals.sent,
            delivered: totals.delivered,
            packets_sent: self.packets_sent,
            packets_fulfilled: self.packets_fulfilled,
            packets_rejected: self.packets_rejected,
            rejects_by_code: self.rejects_by_code,
            stop: self.stop.unwrap_or(StopReason::Completed),
            rate: self.rate.is_known().then(|| (self.rate.lower(), self.rate.upper())),
            max_packet_amount: self.max_packet.learned(),
            destination_asset: self.destination_asset,
            in_doubt: self.in_doubt,
            close_acknowledged: self.close_acknowledged,
        }
    }
}

#[cfg(test)]
mod tests;
