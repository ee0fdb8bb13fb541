//! WAL group commit: one thread makes every queued write durable with one fsync.
//!
//! Writers put their WriteBatch into RocksDB without `sync` (so it is readable at once) and
//! then queue a [`SyncRequest`]. The syncer thread takes everything queued, calls
//! `FlushWAL(sync = true)` once, and completes all of it. Each request was queued after its
//! write, so the sync covers it. Requests from every group of the node share the sync: while
//! one fsync runs, the next batch gathers, so a request waits at most for the fsync in flight
//! plus its own.
//!
//! A failed sync poisons the syncer for good: after a failed fsync the kernel may have dropped
//! the dirty pages, so a later "successful" fsync proves nothing (the fsyncgate lesson).

use std::io;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use openraft::storage::IOFlushed;

use crate::TypeConfig;
use crate::error::StoreError;
use crate::metrics;

/// How many requests one sync completes at most; bounds the batch the thread holds.
pub(crate) const SYNC_BATCH_REQUESTS_MAX: usize = 16 * 1024;

pub(crate) enum SyncRequest {
    /// An append: tell openraft once durable.
    Append {
        callback: IOFlushed<TypeConfig>,
        started: Instant,
    },
    /// Anything else that must be durable before its caller continues (the vote).
    Barrier(tokio::sync::oneshot::Sender<Result<(), StoreError>>),
}

/// Handle to the syncer thread. Dropping it stops the thread after the queue drains.
pub(crate) struct WalSyncer {
    sender: Option<mpsc::Sender<SyncRequest>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for WalSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalSyncer").finish_non_exhaustive()
    }
}

impl WalSyncer {
    pub(crate) fn start(db: Arc<rocksdb::DB>) -> io::Result<WalSyncer> {
        let (sender, receiver) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("martelo-wal-sync".into())
            .spawn(move || run(&db, &receiver))?;
        Ok(WalSyncer {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues a request. If the thread is gone the request is completed with an error here.
    pub(crate) fn submit(&self, request: SyncRequest) {
        let Some(sender) = &self.sender else {
            complete(request, &Err(StoreError::SyncerStopped));
            return;
        };
        if let Err(mpsc::SendError(request)) = sender.send(request) {
            complete(request, &Err(StoreError::SyncerStopped));
        }
    }

    /// Waits until everything written before this call is durable.
    pub(crate) async fn barrier(&self) -> Result<(), StoreError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.submit(SyncRequest::Barrier(sender));
        receiver.await.map_err(|_| StoreError::SyncerStopped)?
    }
}

impl Drop for WalSyncer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the queue is drained; joining makes
        // sure its handle on the database is gone before the database closes.
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &rocksdb::DB, receiver: &mpsc::Receiver<SyncRequest>) {
    let mut poisoned: Option<String> = None;
    let mut pending = Vec::new();
    while let Ok(first) = receiver.recv() {
        pending.push(first);
        while pending.len() < SYNC_BATCH_REQUESTS_MAX {
            match receiver.try_recv() {
                Ok(request) => pending.push(request),
                Err(_) => break,
            }
        }
        let result = match &poisoned {
            Some(reason) => Err(StoreError::SyncPoisoned(reason.clone())),
            None => {
                let started = Instant::now();
                let synced = db.flush_wal(true);
                ::metrics::histogram!(metrics::WAL_SYNC_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                ::metrics::histogram!(metrics::WAL_SYNC_BATCH_REQUESTS)
                    .record(pending.len() as f64);
                synced.map_err(|error| {
                    tracing::error!(%error, "WAL sync failed; storage is now read-only");
                    poisoned = Some(error.to_string());
                    StoreError::Rocks(error)
                })
            }
        };
        for request in pending.drain(..) {
            complete(request, &result);
        }
    }
}

fn complete(request: SyncRequest, result: &Result<(), StoreError>) {
    let copy = || match result {
        Ok(()) => Ok(()),
        Err(error) => Err(StoreError::SyncPoisoned(error.to_string())),
    };
    match request {
        SyncRequest::Append { callback, started } => {
            if result.is_ok() {
                ::metrics::histogram!(metrics::APPEND_SECONDS)
                    .record(started.elapsed().as_secs_f64());
            }
            callback.io_completed(copy().map_err(io::Error::from));
        }
        SyncRequest::Barrier(sender) => {
            let _ = sender.send(copy());
        }
    }
}
