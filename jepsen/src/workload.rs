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
//! a fixed increment, no reserve or buy-it-now, and no bidder bidding twice on one auction,
//! so the engine's "leader raises own maximum" rule never applies. On the gRPC path every bid
//! has a bidder id never used before; through the gateway (`--via gateway`) bidders are the
//! signed-up accounts, each used at most once per auction (an auction every account has bid
//! on gets reads only).
//!
//! Clients reach the cluster through [`crate::api::Api`], gRPC or HTTP; both answer in the
//! same words, mapped to records here. How answers become history records:
//! - accepted bid: `ok` `accepted: true`; rejected as too low or auction closed: `ok`
//!   `accepted: false` (the engine applied it and said no, which the model explains);
//! - rejected as `auction_not_open` (its end passed but the leader's `Close` is not applied
//!   yet): `fail`. Rejections change no state, so `fail` ("no effect") is true; the model has
//!   no clock and could not explain the rejection otherwise;
//! - `ProposeError::Unknown` (HTTP: 503 `outcome_unknown`, `timeout`, no answer, after
//!   retries with the same key): `info`, and the client continues as a fresh process;
//!   `ProposeError::NotApplied` (HTTP: 503 `unavailable`, 429, with no unknown attempt
//!   before): `fail`;
//! - a read that got no answer: `fail` (a read has no effect either way).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use martelo_client::{Client, ClientOptions};

use crate::api::{Api, BidOutcome, CreateOutcome, NewAuction, ReadOutcome, Target, home_seeds};
use crate::generate::Rng;
use crate::history::{
    BidRequest, EventType, Function, HistoryWriter, ReadLimits, Record, Terms, Value,
};

/// On the gRPC path bidders get ids from here up, one per bid (the seller is
/// [`crate::api::GRPC_SELLER`]).
const FIRST_BIDDER: u64 = 1_000;
/// Process ids of auction keepers and close observers start here; workers use `0..clients`
/// and take fresh ids from the same counter after an `info`.
const FIRST_SPARE_PROCESS: u64 = 100_000;
/// How often a close observer reads an auction past its end.
const CLOSE_POLL: Duration = Duration::from_millis(250);
/// How often a worker reconnects through its home node (see [`work`]).
const RECONNECT_EVERY: Duration = Duration::from_secs(2);
/// Auctions start this far in the past, so clock skew never makes a bid early.
const START_MARGIN: Duration = Duration::from_secs(60);

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
    /// Bidders (of a limited set, the gateway's accounts) that have bid here already.
    bidders: BTreeSet<u64>,
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

    /// A bidder of `pool` that has not bid on this auction yet (from a random start), or
    /// `None` when every one has: a bidder bids at most once per auction.
    fn next_bidder(&self, pool: &[u64], rng: &mut Rng) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let start = rng.below(pool.len() as u64) as usize;
        let bidder = (0..pool.len())
            .map(|offset| pool[(start + offset) % pool.len()])
            .find(|bidder| !state.bidders.contains(bidder))?;
        state.bidders.insert(bidder);
        Some(bidder)
    }
}

/// What every task shares.
#[derive(Debug)]
pub struct Shared {
    config: WorkloadConfig,
    recorder: Arc<Recorder>,
    target: Target,
    /// The bidders a limited target allows (`None`: a fresh id per bid).
    bidder_pool: Option<Vec<u64>>,
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

    /// The bidder of the next bid on `auction`: a fresh id, or an account of the pool that
    /// has not bid there yet (`None` when all have).
    fn pick_bidder(&self, auction: &AuctionSlot, rng: &mut Rng) -> Option<u64> {
        match &self.bidder_pool {
            None => Some(self.next_bidder.fetch_add(1, Ordering::Relaxed)),
            Some(pool) => auction.next_bidder(pool, rng),
        }
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

    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            deadline: self.config.deadline,
            ..ClientOptions::default()
        }
    }
}

/// The workload's tasks.
#[derive(Debug)]
pub struct Workload {
    pub shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Connects one client per worker (each with its own leader cache on the gRPC path, so a
    /// stale cache on one client can show a deposed leader's answers; each with its own home
    /// gateway on the gateway path) and starts every task.
    pub async fn start(
        config: WorkloadConfig,
        target: Target,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<Workload> {
        let slots = config.auctions;
        let clients = config.clients;
        let shared = Arc::new(Shared {
            recorder,
            bidder_pool: target.bidders(),
            target,
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
        let options = shared.client_options();
        let mut tasks = Vec::new();
        for slot in 0..slots {
            let client = shared.target.connect(0, options).await?;
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(keep_auction(shared, client, slot)));
        }
        for worker in 0..clients {
            let client = shared.target.connect(worker, options).await?;
            let shared = Arc::clone(&shared);
            tasks.push(tokio::spawn(work(shared, client, worker)));
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

fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Keeps slot `slot` filled with an open auction until the workload stops.
async fn keep_auction(shared: Arc<Shared>, client: Api, slot: usize) {
    let mut rng = Rng::new(shared.config.seed ^ (0x5eed_0000 + slot as u64));
    while !shared.stopping.load(Ordering::SeqCst) {
        // The request id is drawn first: through the gateway it also names the auction.
        let request = shared.request_id();
        let id = client
            .auction_id_for(&request)
            .unwrap_or_else(|| shared.next_auction.fetch_add(1, Ordering::Relaxed));
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
        let now = wall_clock_us();
        let auction = NewAuction {
            id,
            terms,
            start_us: now.saturating_sub(micros(START_MARGIN)),
            end_us: now + micros(window),
            soft_window_us: micros(window / 4),
            extension_total_max_us: micros(window / 2),
        };
        if !create_auction(&shared, &client, &auction, &request).await {
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

/// Creates `auction`, resending the same request id after an unknown outcome, until it is
/// known to exist (true) or known not to (false, also when the workload stops).
async fn create_auction(
    shared: &Shared,
    client: &Api,
    auction: &NewAuction,
    request: &str,
) -> bool {
    loop {
        let event = Event {
            process: shared.fresh_process(),
            f: Function::CreateAuction,
            auction: auction.id,
            request,
        };
        shared
            .recorder
            .invoke(&event, Some(Value::Terms(auction.terms)));
        match client.create_auction(auction, request).await {
            CreateOutcome::Created => {
                shared.recorder.ok(&event, None);
                return true;
            }
            CreateOutcome::AlreadyExists => {
                shared.recorder.ok(&event, Some(Value::AlreadyExists));
                return true;
            }
            CreateOutcome::Failed(why) => {
                shared.recorder.fail(&event, why);
                return false;
            }
            CreateOutcome::Unknown(why) => shared.recorder.info(&event, why),
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Records the auction's close as an observation: invoked now (the close may take effect
/// any time from here, skewed clocks included), `ok` once a linearizable read shows it.
async fn observe_close(shared: &Shared, client: &Api, auction: &AuctionSlot) {
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
        if let ReadOutcome::View(view) = client.read(auction.id).await
            && view.closed
        {
            match view.outcome {
                Some(outcome) => shared.recorder.ok(&event, Some(Value::Closed { outcome })),
                None => shared
                    .recorder
                    .info(&event, "closed without an outcome (cancelled)".to_owned()),
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
/// On the gRPC path, every [`RECONNECT_EVERY`] the worker reconnects through its home node
/// (the seeds rotated by its index), as a long-lived client re-resolving the cluster would:
/// its leader cache then reflects what that node believes. So during a partition some
/// workers follow the majority's new leader while others keep asking a deposed one, which is
/// what lets stale reads and unreplicated acknowledgements show up in the history. On the
/// gateway path each gateway's own client does that, and the worker keeps its home gateway.
async fn work(shared: Arc<Shared>, mut client: Api, worker: usize) {
    let mut rng = Rng::new(shared.config.seed ^ (0xc11e_0000 + worker as u64));
    let mut process = worker as u64;
    let per_worker = (shared.config.rate / shared.config.clients.max(1) as f64).max(0.1);
    let pause = Duration::from_secs_f64(1.0 / per_worker);
    let mut connected = Instant::now();
    while !shared.stopping.load(Ordering::SeqCst) {
        let started = Instant::now();
        if let Target::Grpc(seeds) = &shared.target
            && connected.elapsed() >= RECONNECT_EVERY
        {
            connected = Instant::now();
            let home = home_seeds(seeds, worker);
            if let Ok(fresh) = Client::connect(&home, shared.client_options()).await {
                client = Api::Grpc(fresh);
            }
        }
        match shared.pick_active(&mut rng) {
            None => {}
            Some(auction) if rng.percent(shared.config.read_percent) => {
                let _answered = read(&shared, &client, process, auction.id).await;
            }
            Some(auction) => match shared.pick_bidder(&auction, &mut rng) {
                // Every account has bid on this auction: read it instead.
                None => {
                    let _answered = read(&shared, &client, process, auction.id).await;
                }
                Some(bidder) => {
                    let amount = auction.next_amount(&mut rng);
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
            },
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
    client: &Api,
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
    match client.bid(auction.id, amount, bidder, request).await {
        BidOutcome::Accepted => {
            shared
                .recorder
                .ok(&event, Some(Value::BidReply { accepted: true }));
            BidAnswer::Ok
        }
        BidOutcome::Refused => {
            shared
                .recorder
                .ok(&event, Some(Value::BidReply { accepted: false }));
            BidAnswer::Ok
        }
        BidOutcome::Rejected(code) => {
            if code == "auction_not_open" && auction.nominal_end <= Instant::now() {
                // Past its end: stop bidding on it.
                auction.ended.store(true, Ordering::Relaxed);
            }
            shared.recorder.fail(&event, code);
            BidAnswer::Fail
        }
        BidOutcome::NotApplied(why) => {
            shared.recorder.fail(&event, why);
            BidAnswer::Fail
        }
        BidOutcome::Unknown(why) => {
            shared.recorder.info(&event, why);
            BidAnswer::Info
        }
    }
}

/// One linearizable read, recorded; true when it got an answer.
pub async fn read(shared: &Shared, client: &Api, process: u64, auction: u64) -> bool {
    let request = shared.request_id();
    let event = Event {
        process,
        f: Function::Read,
        auction,
        request: &request,
    };
    shared.recorder.invoke(&event, None);
    match client.read(auction).await {
        ReadOutcome::View(view) => {
            shared.recorder.ok(&event, Some(Value::State(view)));
            true
        }
        ReadOutcome::NotFound => {
            shared.recorder.ok(&event, Some(Value::NotFound));
            true
        }
        ReadOutcome::Failed(why) => {
            shared.recorder.fail(&event, why);
            false
        }
    }
}

/// After healing: one read of every auction the workload touched, each retried until it
/// answers (or `deadline` passes), recorded like any read.
pub async fn final_reads(shared: &Shared, deadline: Instant) -> anyhow::Result<()> {
    let client = shared.target.connect(0, shared.client_options()).await?;
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
