//! The client workload: concurrent clients bidding on and reading short auctions, each
//! operation recorded as an invoke and a completion in `history.jsonl`.
//!
//! ```text
//!   auction keeper ── create (same request id until known) ──► active auctions (K at a time)
//!        └─ close observer per auction: invoke `close` at create, poll reads after its end,
//!           `ok` with the outcome once a read shows it closed; then a new auction replaces it
//!   C workers ── bid (unique amount, unique bidder) | linearizable read ──► history
//!        └─ sometimes resend an acknowledged bid's request id (at-least-once delivery)
//! ```
//!
//! The workload stays inside the checker's model (`model.rs`): plain bids (no proxy maximum),
//! a fixed increment, no reserve or buy-it-now, and every bid from a bidder id never used
//! before, so the engine's "leader raises own maximum" rule never applies.
//!
//! How engine answers become history records:
//! - accepted bid: `ok` `accepted: true`; rejected as too low or auction closed: `ok`
//!   `accepted: false` (the engine applied it and said no, which the model explains);
//! - rejected as `auction_not_open` (its end passed but the leader's `Close` is not applied
//!   yet): `fail`. Rejections change no state, so `fail` ("no effect") is true; the model has
//!   no clock and could not explain the rejection otherwise;
//! - `ProposeError::Unknown`: `info`, and the client continues as a fresh process;
//!   `ProposeError::NotApplied`: `fail`;
//! - a read that got no answer: `fail` (a read has no effect either way).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use martelo_client::{Client, ClientErrorCode, ClientOptions, ProposeError, ReadConsistency};
use martelo_engine::{
    Accepted, Action, Actor, Amount, AuctionId, AuctionResult, AuctionSpec, Currency, Description,
    IncrementPolicy, Micros, RejectCode, Reply, Request, RequestId, Role, SoftClose, SoftCloseMode,
    Timestamp, Title, UserId,
};
use martelo_proto::ErrorCode;

use crate::generate::Rng;
use crate::history::{
    AuctionView, BidRequest, CloseOutcome, EventType, Function, HistoryWriter, ReadLimits, Record,
    Terms, TopBid, Value,
};

/// The seller of every auction; bidders get ids from [`FIRST_BIDDER`] up, one per bid.
const SELLER: u64 = 1;
const FIRST_BIDDER: u64 = 1_000;
/// Process ids of auction keepers and close observers start here; workers use `0..clients`
/// and take fresh ids from the same counter after an `info`.
const FIRST_SPARE_PROCESS: u64 = 100_000;
/// How often a close observer reads an auction past its end.
const CLOSE_POLL: Duration = Duration::from_millis(250);
/// How often a worker reconnects through its home node (see [`work`]).
const RECONNECT_EVERY: Duration = Duration::from_secs(2);
/// Auctions start this far in the past, so clock skew never makes a bid early.
const START_MARGIN: Micros = Micros::from_secs(60);

/// What the workload does.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub clients: usize,
    /// Auctions open at a time.
    pub auctions: usize,
    /// Operations per second over all workers (bids and reads), a ceiling.
    pub rate: f64,
    pub seed: u64,
    /// Auction windows are drawn from this range.
    pub window_min: Duration,
    pub window_max: Duration,
    /// Percent of operations that are reads.
    pub read_percent: u32,
    /// Percent of acknowledged bids whose request id is sent again.
    pub resend_percent: u32,
    /// Bounds one client operation (all its retries).
    pub deadline: Duration,
    /// A short prefix of every request id (the run's id), so runs never collide.
    pub run_tag: String,
}

/// Counts shown in the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    pub closes: AtomicU64,
}

/// Appends records to `history.jsonl` with times from one monotonic clock.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    writer: Mutex<HistoryWriter<BufWriter<File>>>,
    pub progress: Progress,
}

/// One record's fields, without the index and time the recorder assigns.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    pub process: u64,
    pub f: Function,
    pub auction: u64,
    pub request: &'a str,
}

impl Recorder {
    pub fn create(path: &std::path::Path, start: Instant) -> std::io::Result<Recorder> {
        let file = File::create(path)?;
        Ok(Recorder {
            start,
            writer: Mutex::new(HistoryWriter::new(
                BufWriter::new(file),
                ReadLimits::default(),
            )),
            progress: Progress::default(),
        })
    }

    pub fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn append(
        &self,
        event: &Event<'_>,
        kind: EventType,
        value: Option<Value>,
        error: Option<String>,
    ) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // The time is taken under the lock, so the file is in time order.
        let record = Record {
            index: 0,
            process: event.process,
            event: kind,
            f: event.f,
            auction: event.auction,
            request: event.request.to_owned(),
            value,
            time_ns: self.elapsed_ns(),
            error: error.map(|mut note| {
                truncate(&mut note, crate::history::ERROR_NOTE_BYTES_MAX);
                note
            }),
        };
        // A record the writer refuses is a harness bug; the history stays well-formed
        // without it, and the missing completion turns the operation into `info`.
        let _ = writer.append(record);
    }

    pub fn invoke(&self, event: &Event<'_>, value: Option<Value>) {
        self.append(event, EventType::Invoke, value, None);
    }

    pub fn ok(&self, event: &Event<'_>, value: Option<Value>) {
        self.progress.ok.fetch_add(1, Ordering::Relaxed);
        self.append(event, EventType::Ok, value, None);
    }

    pub fn fail(&self, event: &Event<'_>, error: String) {
        self.progress.fail.fetch_add(1, Ordering::Relaxed);
        self.append(event, EventType::Fail, None, Some(error));
    }

    pub fn info(&self, event: &Event<'_>, error: String) {
        self.progress.info.fetch_add(1, Ordering::Relaxed);
        self.append(event, EventType::Info, None, Some(error));
    }

    pub fn flush(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writer.flush();
    }
}

fn truncate(text: &mut String, bytes_max: usize) {
    if text.len() > bytes_max {
        let mut cut = bytes_max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

/// One auction the workload created (or tried to).
#[derive(Debug)]
struct AuctionSlot {
    id: u64,
    terms: Terms,
    /// When the harness expects it to end (its clock; the cluster's may differ).
    nominal_end: Instant,
    state: Mutex<AmountState>,
    /// A bid was refused as past the auction's end: workers leave it alone.
    ended: AtomicBool,
    /// Its close was observed.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct AmountState {
    used: HashSet<u64>,
    highest: u64,
}

impl AuctionSlot {
    /// A bid amount never used on this auction before: around the highest amount issued so
    /// far, so that some bids win and some lose.
    fn next_amount(&self, rng: &mut Rng) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let increment = self.terms.increment;
        let base = state.highest.max(self.terms.starting_price);
        loop {
            // From two increments below to three above, at any unit in between.
            let offset = rng.below(increment * 5);
            let amount = (base + offset).saturating_sub(increment * 2).max(1);
            if state.used.insert(amount) {
                state.highest = state.highest.max(amount);
                return amount;
            }
        }
    }
}

/// What every task shares.
#[derive(Debug)]
pub struct Shared {
    config: WorkloadConfig,
    recorder: Arc<Recorder>,
    seeds: Vec<String>,
    /// Auctions open for bids, by slot.
    active: Mutex<Vec<Option<Arc<AuctionSlot>>>>,
    /// Every auction ever created or attempted, with its terms.
    all: Mutex<BTreeMap<u64, Terms>>,
    next_process: AtomicU64,
    next_bidder: AtomicU64,
    next_request: AtomicU64,
    next_auction: AtomicU64,
    /// Set when workers and keepers must stop starting operations.
    stopping: AtomicBool,
    /// Set when close observers must give up.
    abandon: AtomicBool,
}

impl Shared {
    fn fresh_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.config.run_tag)
    }

    fn pick_active(&self, rng: &mut Rng) -> Option<Arc<AuctionSlot>> {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let open: Vec<&Arc<AuctionSlot>> = active
            .iter()
            .flatten()
            .filter(|slot| {
                !slot.closed.load(Ordering::Relaxed) && !slot.ended.load(Ordering::Relaxed)
            })
            .collect();
        if open.is_empty() {
            return None;
        }
        Some(Arc::clone(open[rng.below(open.len() as u64) as usize]))
    }

    /// Every auction id the workload created or tried to create, with its terms.
    pub fn auctions(&self) -> BTreeMap<u64, Terms> {
        self.all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stop starting operations and auctions.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Close observers give up; their pending `close` stays without a completion (info).
    pub fn abandon_closes(&self) {
        self.abandon.store(true, Ordering::SeqCst);
    }

    /// Auctions still waiting for their close to be observed.
    pub fn unclosed(&self) -> usize {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active
            .iter()
            .flatten()
            .filter(|slot| !slot.closed.load(Ordering::Relaxed))
            .count()
    }
}

/// The workload's tasks.
#[derive(Debug)]
pub struct Workload {
    pub shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Connects one client per worker (each with its own leader cache, so a stale cache on
    /// one client can show a deposed leader's answers) and starts every task.
    pub async fn start(
        config: WorkloadConfig,
        seeds: Vec<String>,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<Workload> {
        let options = ClientOptions {
            deadline: config.deadline,
            ..ClientOptions::default()
        };
        let slots = config.auctions;
        let clients = config.clients;
        let shared = Arc::new(Shared {
            recorder,
            seeds: seeds.clone(),
            active: Mutex::new(vec![None; slots]),
            all: Mutex::new(BTreeMap::new()),
            next_process: AtomicU64::new(FIRST_SPARE_PROCESS),
            next_bidder: AtomicU64::new(FIRST_BIDDER),
            next_request: AtomicU64::new(1),
            next_auction: AtomicU64::new(config.seed % 1_000_000 * 1_000 + 1),
            stopping: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            config,
        });
        let mut tasks = Vec::new();
        for slot in 0..slots {
            let client = connect(&seeds, options).await?;
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(keep_auction(shared, client, slot)));
        }
        for worker in 0..clients {
            let mut home = seeds.clone();
            home.rotate_left(worker % seeds.len().max(1));
            let client = connect(&home, options).await?;
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(work(shared, client, worker, home, options)));
        }
        Ok(Workload { shared, tasks })
    }

    /// Waits for every task (after [`Shared::stop`] and, eventually,
    /// [`Shared::abandon_closes`]).
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn connect(seeds: &[String], options: ClientOptions) -> anyhow::Result<Client> {
    let mut last = None;
    for _ in 0..20 {
        match Client::connect(seeds, options).await {
            Ok(client) => return Ok(client),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(anyhow::anyhow!(
        "cannot connect a client to {seeds:?}: {}",
        last.map(|error| error.to_string()).unwrap_or_default()
    ))
}

fn wall_clock() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Timestamp(micros)
}

fn micros(duration: Duration) -> Micros {
    Micros(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

fn request_id(text: &str) -> RequestId {
    RequestId::try_from(text).expect("run tags and counters make short ASCII request ids")
}

/// Keeps slot `slot` filled with an open auction until the workload stops.
async fn keep_auction(shared: Arc<Shared>, client: Client, slot: usize) {
    let mut rng = Rng::new(shared.config.seed ^ (0x5eed_0000 + slot as u64));
    while !shared.stopping.load(Ordering::SeqCst) {
        let id = shared.next_auction.fetch_add(1, Ordering::Relaxed);
        let terms = Terms {
            starting_price: 100 + rng.below(100),
            increment: 5 + rng.below(6),
        };
        let span = shared
            .config
            .window_max
            .saturating_sub(shared.config.window_min);
        let window = shared.config.window_min
            + Duration::from_millis(rng.below(span.as_millis().max(1) as u64));
        shared
            .all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, terms);
        if !create_auction(&shared, &client, id, terms, window).await {
            continue;
        }
        let auction = Arc::new(AuctionSlot {
            id,
            terms,
            nominal_end: Instant::now() + window,
            state: Mutex::new(AmountState::default()),
            ended: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        shared.active.lock().unwrap_or_else(|e| e.into_inner())[slot] = Some(Arc::clone(&auction));
        observe_close(&shared, &client, &auction).await;
        if shared.abandon.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Creates auction `id`, resending the same request id after an unknown outcome, until it
/// is known to exist (true) or known not to (false, also when the workload stops).
async fn create_auction(
    shared: &Shared,
    client: &Client,
    id: u64,
    terms: Terms,
    window: Duration,
) -> bool {
    let request = shared.request_id();
    let now = wall_clock();
    let soft_window = micros(window / 4);
    let spec = AuctionSpec {
        title: Title::try_from(format!("jepsen auction {id}")).expect("a short ASCII title"),
        description: Description::try_from("").expect("an empty description is allowed"),
        currency: Currency::try_from("USD").expect("a valid currency"),
        starting_price: Amount(terms.starting_price),
        reserve_price: None,
        buy_now_price: None,
        increment: IncrementPolicy::Fixed(Amount(terms.increment)),
        start: Timestamp(now.0.saturating_sub(START_MARGIN.0)),
        end: now.plus(micros(window)),
        soft_close: Some(SoftClose {
            window: soft_window,
            mode: SoftCloseMode::AddToEnd(soft_window),
            total_extension_max: Some(micros(window / 2)),
        }),
    };
    let engine_request = Request {
        actor: Actor {
            user: UserId(SELLER),
            role: Role::Seller,
        },
        request_id: request_id(&request),
        action: Action::CreateAuction {
            auction_id: AuctionId(id),
            spec,
        },
    };
    loop {
        let event = Event {
            process: shared.fresh_process(),
            f: Function::CreateAuction,
            auction: id,
            request: &request,
        };
        shared.recorder.invoke(&event, Some(Value::Terms(terms)));
        match client.propose(engine_request.clone()).await {
            Ok(proposed) => match proposed.reply {
                Reply::Accepted(Accepted::AuctionCreated { .. }) => {
                    shared.recorder.ok(&event, None);
                    return true;
                }
                Reply::Rejected(RejectCode::AuctionExists) => {
                    shared.recorder.ok(&event, Some(Value::AlreadyExists));
                    return true;
                }
                other => {
                    shared
                        .recorder
                        .fail(&event, format!("create answered {other:?}"));
                    return false;
                }
            },
            Err(ProposeError::NotApplied { code, message }) => {
                shared.recorder.fail(&event, format!("{code}: {message}"));
                return false;
            }
            Err(error @ ProposeError::Unknown { .. }) => {
                shared.recorder.info(&event, error.to_string());
            }
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn outcome_of(result: &AuctionResult) -> Option<CloseOutcome> {
    match result {
        AuctionResult::Sold { winner, price, .. } => Some(CloseOutcome::Sold(TopBid {
            amount: price.0,
            bidder: winner.0,
        })),
        AuctionResult::Unsold { .. } => Some(CloseOutcome::Unsold),
        AuctionResult::Cancelled { .. } => None,
    }
}

/// The history's view of an engine view.
fn view_of(view: &martelo_engine::AuctionView) -> AuctionView {
    let outcome = view
        .closed
        .as_ref()
        .and_then(|closed| outcome_of(&closed.result));
    AuctionView {
        price: view.price.map(|price| price.0),
        leader: view.leading_bidder.map(|bidder| bidder.0),
        closed: view.closed.is_some(),
        outcome,
    }
}

/// Records the auction's close as an observation: invoked now (the close may take effect
/// any time from here, skewed clocks included), `ok` once a linearizable read shows it.
async fn observe_close(shared: &Shared, client: &Client, auction: &AuctionSlot) {
    let request = shared.request_id();
    let event = Event {
        process: shared.fresh_process(),
        f: Function::Close,
        auction: auction.id,
        request: &request,
    };
    shared.recorder.invoke(&event, None);
    tokio::time::sleep_until(auction.nominal_end.into()).await;
    loop {
        if shared.abandon.load(Ordering::SeqCst) {
            // No completion: the close stays pending, which the checker reads as info.
            return;
        }
        if let Ok(read) = client
            .read_auction(AuctionId(auction.id), ReadConsistency::Linearizable)
            .await
            && let Some(closed) = &read.view.closed
        {
            match outcome_of(&closed.result) {
                Some(outcome) => shared.recorder.ok(&event, Some(Value::Closed { outcome })),
                None => shared
                    .recorder
                    .info(&event, format!("closed as {:?}", closed.result)),
            }
            shared
                .recorder
                .progress
                .closes
                .fetch_add(1, Ordering::Relaxed);
            auction.closed.store(true, Ordering::SeqCst);
            return;
        }
        tokio::time::sleep(CLOSE_POLL).await;
    }
}

/// One worker: bids and reads on open auctions at its share of the rate.
///
/// Every [`RECONNECT_EVERY`] the worker reconnects through its home node (the seeds rotated
/// by its index), as a long-lived client re-resolving the cluster would: its leader cache
/// then reflects what that node believes. So during a partition some workers follow the
/// majority's new leader while others keep asking a deposed one, which is what lets stale
/// reads and unreplicated acknowledgements show up in the history.
async fn work(
    shared: Arc<Shared>,
    mut client: Client,
    worker: usize,
    home: Vec<String>,
    options: ClientOptions,
) {
    let mut rng = Rng::new(shared.config.seed ^ (0xc11e_0000 + worker as u64));
    let mut process = worker as u64;
    let per_worker = (shared.config.rate / shared.config.clients.max(1) as f64).max(0.1);
    let pause = Duration::from_secs_f64(1.0 / per_worker);
    let mut connected = Instant::now();
    while !shared.stopping.load(Ordering::SeqCst) {
        let started = Instant::now();
        if connected.elapsed() >= RECONNECT_EVERY {
            connected = Instant::now();
            if let Ok(fresh) = Client::connect(&home, options).await {
                client = fresh;
            }
        }
        match shared.pick_active(&mut rng) {
            None => {}
            Some(auction) if rng.percent(shared.config.read_percent) => {
                let _answered = read(&shared, &client, process, auction.id).await;
            }
            Some(auction) => {
                let amount = auction.next_amount(&mut rng);
                let bidder = shared.next_bidder.fetch_add(1, Ordering::Relaxed);
                let request = shared.request_id();
                let mut answer = bid(
                    &shared, &client, process, &auction, amount, bidder, &request,
                )
                .await;
                // At-least-once delivery: the same request id again, as a second attempt of
                // the same logical operation. A correct system answers it the same way.
                if answer == BidAnswer::Ok && rng.percent(shared.config.resend_percent) {
                    answer = bid(
                        &shared, &client, process, &auction, amount, bidder, &request,
                    )
                    .await;
                }
                if answer == BidAnswer::Info {
                    // The operation may still be in flight: continue as a new process.
                    process = shared.fresh_process();
                }
            }
        }
        if let Some(rest) = pause.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BidAnswer {
    Ok,
    Fail,
    Info,
}

async fn bid(
    shared: &Shared,
    client: &Client,
    process: u64,
    auction: &AuctionSlot,
    amount: u64,
    bidder: u64,
    request: &str,
) -> BidAnswer {
    let event = Event {
        process,
        f: Function::Bid,
        auction: auction.id,
        request,
    };
    shared
        .recorder
        .invoke(&event, Some(Value::Bid(BidRequest { amount, bidder })));
    let engine_request = Request {
        actor: Actor {
            user: UserId(bidder),
            role: Role::Bidder,
        },
        request_id: request_id(request),
        action: Action::PlaceBid {
            auction_id: AuctionId(auction.id),
            amount: Amount(amount),
            max: None,
        },
    };
    match client.propose(engine_request).await {
        Ok(proposed) => match proposed.reply {
            Reply::Accepted(Accepted::Bid { .. }) => {
                shared
                    .recorder
                    .ok(&event, Some(Value::BidReply { accepted: true }));
                BidAnswer::Ok
            }
            Reply::Rejected(
                RejectCode::BidTooLow | RejectCode::AuctionClosed | RejectCode::MaxNotRaised,
            ) => {
                shared
                    .recorder
                    .ok(&event, Some(Value::BidReply { accepted: false }));
                BidAnswer::Ok
            }
            Reply::Rejected(code) => {
                if code == RejectCode::AuctionNotOpen && auction.nominal_end <= Instant::now() {
                    // Past its end: stop bidding on it.
                    auction.ended.store(true, Ordering::Relaxed);
                }
                shared.recorder.fail(&event, code.as_str().to_owned());
                BidAnswer::Fail
            }
            Reply::Accepted(other) => {
                shared
                    .recorder
                    .info(&event, format!("unexpected reply {other:?}"));
                BidAnswer::Info
            }
        },
        Err(ProposeError::NotApplied { code, message }) => {
            shared.recorder.fail(&event, format!("{code}: {message}"));
            BidAnswer::Fail
        }
        Err(error @ ProposeError::Unknown { .. }) => {
            shared.recorder.info(&event, error.to_string());
            BidAnswer::Info
        }
    }
}

/// One linearizable read, recorded; true when it got an answer.
pub async fn read(shared: &Shared, client: &Client, process: u64, auction: u64) -> bool {
    let request = shared.request_id();
    let event = Event {
        process,
        f: Function::Read,
        auction,
        request: &request,
    };
    shared.recorder.invoke(&event, None);
    match client
        .read_auction(AuctionId(auction), ReadConsistency::Linearizable)
        .await
    {
        Ok(read) => {
            let view = view_of(&read.view);
            shared.recorder.ok(&event, Some(Value::State(view)));
            true
        }
        Err(error) if error.code() == ClientErrorCode::Server(ErrorCode::AuctionNotFound) => {
            shared.recorder.ok(&event, Some(Value::NotFound));
            true
        }
        Err(error) => {
            shared.recorder.fail(&event, error.to_string());
            false
        }
    }
}

/// After healing: one read of every auction the workload touched, each retried until it
/// answers (or `deadline` passes), recorded like any read.
pub async fn final_reads(shared: &Shared, deadline: Instant) -> anyhow::Result<()> {
    let options = ClientOptions {
        deadline: shared.config.deadline,
        ..ClientOptions::default()
    };
    let client = connect(&shared.seeds, options).await?;
    for auction in shared.auctions().into_keys() {
        loop {
            let process = shared.fresh_process();
            let answered = read(shared, &client, process, auction).await;
            if answered || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
