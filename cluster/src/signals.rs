//! The stop signals of the long-running commands (`martelo node`, `martelo gateway`): SIGINT
//! (Ctrl-C) and SIGTERM, with their handlers installed before the process listens.
//!
//! Why before: a process binds its port first, and a supervisor (a test, systemd, `martelo
//! dev`) may see the port answer and send SIGTERM at once. A handler that is installed only
//! when the wait starts leaves a window in which SIGTERM's default action kills the process
//! (no hand-off, no flush, exit by signal instead of 0). The cluster tests hit exactly that
//! on a node restarted and stopped within milliseconds.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// SIGINT and SIGTERM handlers, installed when this is created.
#[derive(Debug)]
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Installs the handlers now: from here on, either signal is kept for [`Self::received`]
    /// instead of ending the process.
    pub fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first SIGINT or SIGTERM since [`Self::install`] (one that came
    /// before this call counts).
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
