//! Every limit and default of the node, in one place, units last. A leaf: the clients, the
//! listeners and config read them, and it imports nothing. `config` checks an operator's values
//! against the bounds given here.

pub const LISTEN: &str = "127.0.0.1:7770";
pub const LOG_LEVEL: &str = "info";
/// Upper bound on `node.worker_threads`; the default is one per available core.
pub const WORKER_THREADS_MAX: usize = 256;
pub const BODY_BYTES_MAX: usize = 64 * 1024;
pub const CONNECTIONS_MAX: usize = 1024;
pub const REQUESTS_IN_FLIGHT_MAX: usize = 4096;
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
pub const BODY_READ_TIMEOUT_MS: u64 = 10_000;
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;
pub const OUTGOING_CONNECTIONS_PER_PEER_MAX: usize = 256;
pub const OUTGOING_IDLE_TIMEOUT_MS: u64 = 20_000;
pub const OUTGOING_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// A TLS handshake with an `https://` next hop, after its TCP connect: a few round trips.
pub const OUTGOING_TLS_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
pub const EXPIRY_MARGIN_MS: u64 = 1_000;
/// The least margin a node may keep: half of it records a late Fulfill's writes, the other half
/// carries the Fulfill upstream. With 0, the outgoing Prepare expires with the incoming one,
/// and a Fulfill arriving at the last moment cannot be relayed in time (the node pays
/// downstream and is not paid).
pub const EXPIRY_MARGIN_MS_MIN: u64 = 200;
pub const HOLD_TIME_MS_MAX: u64 = 30_000;
/// The largest hold time an account may name (`hold_time_ms_max` of an account): a Prepare never
/// waits longer than the 30 s ILP-over-HTTP clients give up after.
pub const HOLD_TIME_MS_MAX_CEILING: u64 = 30_000;
pub const MIN_OUTGOING_WINDOW_MS: u64 = 500;
pub const SPREAD: &str = "0";
pub const REDIS_PREFIX: &str = "thitsax";
pub const SWEEP_INTERVAL_MS: u64 = 1_000;
pub const SWEEP_GRACE_MS: u64 = 2_000;
pub const SWEEP_BATCH_MAX: usize = 1_000;
/// A day: a commit retried after an outage, or from a node that stalled, arrives well within.
pub const SWEEP_TOMBSTONE_RETENTION_S: u64 = 86_400;
/// A week of per-packet history in Redis; older entries are folded into a checkpoint.
pub const JOURNAL_RETENTION_S: u64 = 7 * 86_400;
/// A fulfilled packet's credit marker in Redis lives `store.sweep_tombstone_retention_s`
/// (the age past which owed writes are no longer replayed) plus this: the background retries
/// of a relayed Fulfill's writes (ten minutes) and clock differences fit well within.
pub const CREDIT_MARKER_TTL_MARGIN_S: u64 = 3_600;
/// The owed-writes file, relative to the working directory (each node needs its own: it is
/// locked while the node runs).
pub const OWED_WRITES_PATH: &str = "thitsax-owed-writes.log";
/// Writes of relayed Fulfills owed to Redis at once (a write is one line of about 100 bytes).
pub const OWED_WRITES_MAX: usize = 10_000;
/// A floor, so that recent packets stay in the journal for reconciliation. (A credit's retry
/// no longer reads the journal: it checks the packet's credit marker.)
pub const JOURNAL_RETENTION_S_MIN: u64 = 3_600;
pub const REDIS_RESPONSE_TIMEOUT_MS: u64 = 1_000;
pub const REDIS_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Every instance sees a change of accounts or routes in Redis within this, even if it missed
/// the change's pub/sub message.
pub const CONFIG_POLL_INTERVAL_MS: u64 = 1_000;
/// Asset scales above this are refused: 10^18 already covers wei.
pub const ASSET_SCALE_MAX: u8 = 18;
/// Bounds on operator-set limits, so a typo cannot disable a limit.
pub const BODY_BYTES_MAX_CEILING: usize = 16 * 1024 * 1024;
pub const BODY_BYTES_MAX_FLOOR: usize = 1024;
/// The shutdown drain counts in-flight packets with a u32 semaphore acquisition.
pub const REQUESTS_IN_FLIGHT_CEILING: usize = 1_000_000;

// [settlement]: RFC 0038 settlement engines.
/// Loopback: the engines' callback API has no authentication (RFC 0038). Beside the admin
/// API's port, away from 7770 and the ports after it, which the examples (and operators
/// following them) give to the accounts' own endpoints: a child's URL on this port would make
/// the node send packets to itself.
pub const SETTLEMENT_LISTEN: &str = "127.0.0.1:7761";
pub const SETTLEMENT_BODY_BYTES_MAX: usize = 64 * 1024;
pub const SETTLEMENT_CONNECTIONS_MAX: usize = 64;
pub const SETTLEMENT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const SETTLEMENT_BODY_READ_TIMEOUT_MS: u64 = 10_000;
pub const SETTLEMENT_SHUTDOWN_GRACE_MS: u64 = 5_000;
pub const SETTLEMENT_ENGINE_TIMEOUT_MS: u64 = 10_000;
pub const SETTLEMENT_ENGINE_CONNECTIONS_MAX: usize = 32;
pub const SETTLEMENT_ENGINE_RESPONSE_BYTES_MAX: usize = 64 * 1024;
pub const SETTLEMENT_RETRY_FIRST_MS: u64 = 500;
pub const SETTLEMENT_RETRY_MAX_MS: u64 = 60_000;
pub const SETTLEMENT_SCAN_INTERVAL_MS: u64 = 10_000;
pub const SETTLEMENT_CONCURRENT_MAX: usize = 64;
pub const SETTLEMENT_REFUSAL_PAUSE_MS: u64 = 60_000;
/// The admin API: loopback, and only bound when a token is configured.
pub const ADMIN_LISTEN: &str = "127.0.0.1:7760";
pub const ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
pub const ADMIN_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const ADMIN_BODY_READ_TIMEOUT_MS: u64 = 10_000;
pub const ADMIN_SHUTDOWN_GRACE_MS: u64 = 5_000;

// Incoming payments: STREAM payments the node receives itself, on local accounts.
/// An incoming payment's metadata (JSON text, free-form, given by whoever creates it).
pub const INCOMING_METADATA_BYTES_MAX: usize = 4096;
/// The furthest in the future an incoming payment may expire: an open payment is kept (and
/// accepts packets) until then, so its expiry bounds how long it holds store space.
pub const INCOMING_PAYMENT_EXPIRY_S_MAX: u64 = 30 * 86_400;
/// An incoming payment created through the admin API without an expiry expires after a day.
pub const INCOMING_PAYMENT_EXPIRY_S_DEFAULT: u64 = 86_400;
/// A completed payment whose completion was handled is kept this long after it completed (for
/// the admin API's reads and for reconciliation), then deleted by the expiry scan. A completion
/// not yet handled is never deleted: it is the outbox of what the node still owes to act on.
pub const INCOMING_PAYMENT_RETENTION_S: u64 = 30 * 86_400;

// [spsp] and [stream]: payments the node receives itself.
/// The public SPSP listener. Its own port, away from the ILP-over-HTTP and admin listeners, so an
/// operator can expose it alone (behind a TLS proxy) and keep the others private.
pub const SPSP_LISTEN: &str = "127.0.0.1:7768";
/// SPSP queries are GETs: a request body is never read past this.
pub const SPSP_BODY_BYTES_MAX: usize = 1024;
pub const SPSP_CONNECTIONS_MAX: usize = 256;
pub const SPSP_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const SPSP_BODY_READ_TIMEOUT_MS: u64 = 10_000;
pub const SPSP_SHUTDOWN_GRACE_MS: u64 = 5_000;
// [mojaloop]: the node as a DFSP of a Mojaloop scheme, through the Mojaloop Connector.
/// The backend API the Connector calls (its BACKEND_ENDPOINT): a private listener of its own.
pub const MOJALOOP_BACKEND_LISTEN: &str = "127.0.0.1:7790";
/// FSPIOP bodies are small JSON objects: a quote request or a transfer with its ILP packet.
pub const MOJALOOP_BACKEND_BODY_BYTES_MAX: usize = 65_536;
pub const MOJALOOP_BACKEND_CONNECTIONS_MAX: usize = 64;
pub const MOJALOOP_BACKEND_HEADER_READ_TIMEOUT_MS: u64 = 10_000;
pub const MOJALOOP_BACKEND_BODY_READ_TIMEOUT_MS: u64 = 10_000;
pub const MOJALOOP_BACKEND_SHUTDOWN_GRACE_MS: u64 = 5_000;
/// One call to the Connector's outbound API. Each step waits for the scheme up to the Connector's
/// REQUEST_PROCESSING_TIMEOUT_SECONDS (30 s by default): longer, so that a slow scheme gives the
/// Connector's own 504 rather than our giving up mid-call.
pub const MOJALOOP_OUTBOUND_TIMEOUT_MS: u64 = 40_000;
pub const MOJALOOP_OUTBOUND_RESPONSE_BYTES_MAX: usize = 65_536;
/// The ILP leg of a Mojaloop → ILP transfer ends (delivered or abandoned) within this.
pub const MOJALOOP_PAYMENT_TIMEOUT_MS: u64 = 10_000;
/// How long an incoming payment opened for a Mojaloop payout (`GET /mojaloop/...` on the SPSP
/// listener) takes money: one without a target is paid out when this ends.
pub const MOJALOOP_PAYOUT_WINDOW_MS: u64 = 60_000;
/// Payouts driven at once by one instance (more wait for the next scan).
pub const MOJALOOP_PAYOUTS_IN_FLIGHT_MAX: usize = 8;
/// How often open payouts are looked at (a new one wakes the worker at once).
pub const MOJALOOP_PAYOUT_SCAN_INTERVAL_MS: u64 = 1_000;
/// ...and never later than this: the payer's Connector gives up after 30 s, and a late success is
/// money paid on the ILP side that the Mojaloop side has given up on. Also below an outgoing
/// payment's lease (30 s), so that no instance resumes a transfer's payment after its node died
/// before the deadline (checked where `[mojaloop]` is read).
pub const MOJALOOP_PAYMENT_TIMEOUT_MS_CEILING: u64 = 25_000;
/// The Connector's health watcher (`mojaloop::health`): a party lookup of the node's own party
/// this often. Each one is a real lookup in the scheme, so not much more often than this.
pub const MOJALOOP_HEALTH_INTERVAL_MS: u64 = 5_000;
/// ...and never less often than this, so that a wedged Connector is noticed within minutes.
pub const MOJALOOP_HEALTH_INTERVAL_MS_CEILING: u64 = 300_000;
/// A lookup between two Connectors on loopback answers in 10 to 150 ms (more through a hub);
/// a wedged Connector never answers.
pub const MOJALOOP_HEALTH_TIMEOUT_MS: u64 = 3_000;
/// Failed probes in a row before the Connector is down: a wedged one fails every probe, one slow
/// answer is not an outage. With the defaults a wedge is reported within 13 to 18 s.
pub const MOJALOOP_HEALTH_DOWN_AFTER_FAILURES: u32 = 3;
pub const MOJALOOP_HEALTH_DOWN_AFTER_FAILURES_MAX: u32 = 100;
/// The STREAM server secret's length: credentials are derived from it with HMAC-SHA256.
pub const STREAM_SECRET_BYTES: usize = 32;
/// Expired incoming payments are completed, and completions not yet acknowledged by the hook are
/// handed over again, this often.
pub const COMPLETIONS_SCAN_INTERVAL_MS: u64 = 1_000;
/// Per local account and scan.
pub const COMPLETIONS_BATCH_MAX: usize = 1_000;

/// STREAM sender (`stream::sender`): how far below the probed rate a packet may deliver.
pub const STREAM_SLIPPAGE: &str = "0.01";
/// Each Prepare's expiry, cut to the payment's deadline (the JS reference's default is 30 s;
/// shorter keeps a sender's liquidity held for less when a hop stalls).
pub const STREAM_PACKET_EXPIRY_MS: u64 = 20_000;
pub const STREAM_PACKETS_IN_FLIGHT_MAX: usize = 10;
pub const STREAM_RETRY_WAIT_FIRST_MS: u64 = 100;
pub const STREAM_RETRY_WAIT_MAX_MS: u64 = 5_000;
pub const STREAM_PACKETS_MAX: u64 = 100_000;
/// The probe sends 14 packets, plus one per F08 and a few retries.
pub const STREAM_PROBE_ATTEMPTS_MAX: u32 = 40;
pub const STREAM_REFUSALS_MAX: u32 = 10;
/// A Prepare's answer is waited for this long past its expiry; later, its outcome is unknown.
pub const STREAM_OUTCOME_GRACE_MS: u64 = 2_000;

// Outgoing payments: STREAM payments the node sends itself, from local accounts.
/// An outgoing payment's receiver as the client gave it (payment pointer, SPSP URL or ILP
/// address): a URL's practical length, well above any real one.
pub const OUTGOING_RECEIVER_BYTES_MAX: usize = 1024;
/// An outgoing payment's slippage, a decimal in [0, 1) (`0.005`): more digits than any exchange
/// rate carries.
pub const OUTGOING_SLIPPAGE_BYTES_MAX: usize = 32;
/// The furthest in the future an outgoing payment's deadline may be: a payment still sending
/// holds its lease and its reservations, so its deadline bounds how long it can stay unfinished.
pub const OUTGOING_PAYMENT_DEADLINE_S_MAX: u64 = 86_400;
/// An ended payment (completed or failed) is kept this long after it ended (for the admin API's
/// reads, reconciliation, and so that its id is not paid again), then deleted; see
/// `Store::create_outgoing_payment`.
pub const OUTGOING_PAYMENT_RETENTION_S: u64 = 30 * 86_400;
/// Ended payments past the retention deleted by one creation of a payment on the same account
/// (more than one, so the deletions keep up with the creations).
pub const OUTGOING_PAYMENT_DELETE_BATCH_MAX: usize = 10;
/// Packets one outgoing payment may reserve in all: its per-packet records (reservations and
/// the set of recorded outcomes) stay bounded.
pub const OUTGOING_PACKETS_MAX: u64 = 1_000_000;
/// Distinct ILP reject codes counted per payment; further ones are counted under `other`.
pub const OUTGOING_REJECT_CODES_MAX: usize = 64;
/// Why a payment stopped (free text); a longer reason is cut at a character boundary.
pub const OUTGOING_STOP_REASON_BYTES_MAX: usize = 256;
/// Reservations past their expiry moved to in doubt by one claim of a payment; any more are
/// moved by the next claims (the worker renews its lease well within it).
pub const OUTGOING_DOUBT_BATCH_MAX: usize = 1_000;
/// An outgoing payment created through the admin API without a deadline has a minute.
pub const OUTGOING_PAYMENT_DEADLINE_S_DEFAULT: u64 = 60;

/// Auto-peering requests the node's `[rafiki]` endpoint takes per minute, all callers together.
pub const RAFIKI_PEERING_REQUESTS_PER_MINUTE_MAX: u32 = 10;
/// One call to a Rafiki's admin API, connecting and answering included.
pub const RAFIKI_ADMIN_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Attempts of one admin API call in all, when the first ones meet an outage.
pub const RAFIKI_ADMIN_ATTEMPTS_MAX: u32 = 3;
/// How often the node compares its figure for each Rafiki peer with Rafiki's.
pub const RAFIKI_RECONCILE_INTERVAL_MS: u64 = 60_000;
/// Auto-peerings the admin API lists (`GET /peers/auto`), newest kept.
pub const RAFIKI_PEERINGS_LISTED_MAX: usize = 100;
/// How long a withdrawal recorded at a Rafiki stays reserved before Rafiki releases it unless
/// posted: the node posts it at once, so only an outage longer than this leaves one to expire.
pub const RAFIKI_WITHDRAWAL_TIMEOUT_S: u64 = 300;
/// Withdrawal ids one recording walks through when the earlier ones' reservations expired (each
/// walk starts from the first: see `rafiki::withdrawals`).
pub const RAFIKI_WITHDRAWAL_GENERATIONS_MAX: u32 = 16;
/// How often the withdrawals worker looks for withdrawals owed (also woken by each new one).
pub const RAFIKI_WITHDRAWAL_POLL_INTERVAL_MS: u64 = 1_000;
/// First wait before an owed withdrawal that failed is tried again; doubles from there.
pub const RAFIKI_WITHDRAWAL_RETRY_FIRST_MS: u64 = 500;
/// The longest wait between attempts of an owed withdrawal (a refusal waits this long).
pub const RAFIKI_WITHDRAWAL_RETRY_MAX_MS: u64 = 60_000;
/// Owed withdrawals of one account the worker reads per pass.
pub const RAFIKI_WITHDRAWALS_PER_PASS_MAX: usize = 100;
