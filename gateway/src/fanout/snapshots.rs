//! [`Snapshots`]: coalesced linearizable reads of auctions, so that thousands of watchers
//! of one auction subscribing (or being conflated) at once cost a few reads, not thousands.
//!
//! Correctness needs each caller's snapshot to be read *after* its request began (then it
//! reflects every event the hub had seen, and the caller's registration came first). So a
//! caller never joins a read already in flight: it waits for the next one, which starts as
//! soon as the current one ends and answers everyone who came meanwhile. At most one read
//! per auction runs at a time; a caller waits at most two reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use martelo_client::{AuctionRead, Client, ClientError, ReadConsistency};
use martelo_engine::AuctionId;
use tokio::sync::oneshot;

/// A snapshot or the error that stopped it, shared by every caller of one read.
pub type SnapshotResult = Result<Arc<AuctionRead>, Arc<ClientError>>;

type Waiter = oneshot::Sender<SnapshotResult>;

/// Callers waiting for the next read of one auction (a read is running while the entry
/// exists).
#[derive(Default)]
struct Next {
    waiters: Vec<Waiter>,
}

/// The coalescing reader.
#[derive(Clone)]
pub struct Snapshots {
    client: Client,
    running: Arc<Mutex<HashMap<AuctionId, Next>>>,
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self.running.lock().map_or(0, |running| running.len());
        f.debug_struct("Snapshots")
            .field("running", &running)
            .finish()
    }
}

impl Snapshots {
    /// A reader over `client`.
    pub fn new(client: Client) -> Snapshots {
        Snapshots {
            client,
            running: Arc::default(),
        }
    }

    /// A linearizable snapshot of `auction` read after this call began.
    pub async fn read(&self, auction: AuctionId) -> SnapshotResult {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            match running.get_mut(&auction) {
                Some(next) => {
                    next.waiters.push(tx);
                    None
                }
                None => {
                    running.insert(auction, Next::default());
                    Some(tx)
                }
            }
        };
        if let Some(tx) = start {
            tokio::spawn(self.clone().run(auction, vec![tx]));
        }
        match rx.await {
            Ok(result) => result,
            // The reading task died (a panic): read alone.
            Err(_) => self
                .client
                .read_auction(auction, ReadConsistency::Linearizable)
                .await
                .map(Arc::new)
                .map_err(Arc::new),
        }
    }

    /// Reads for `batch`, then for whoever came meanwhile, until nobody waits.
    async fn run(self, auction: AuctionId, mut batch: Vec<Waiter>) {
        loop {
            let result = self
                .client
                .read_auction(auction, ReadConsistency::Linearizable)
                .await
                .map(Arc::new)
                .map_err(Arc::new);
            for waiter in batch {
                let _ = waiter.send(result.clone());
            }
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            let next = running
                .get_mut(&auction)
                .map(|next| std::mem::take(&mut next.waiters))
                .unwrap_or_default();
            if next.is_empty() {
                running.remove(&auction);
                return;
            }
            batch = next;
        }
    }
}
