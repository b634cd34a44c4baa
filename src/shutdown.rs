//! Shutdown in two steps: `drain` (stop accepting, let in-flight packets finish) and, once the
//! grace period is over, `abort` (in-flight packets are rejected and their debits reversed).

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Aborting,
}

/// Held by whoever decides to shut down.
#[derive(Debug)]
pub struct Shutdown {
    tx: watch::Sender<Phase>,
}

/// Held by whoever must react. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<Phase>,
}

impl Shutdown {
    pub fn new() -> (Shutdown, ShutdownSignal) {
        let (tx, rx) = watch::channel(Phase::Running);
        (Shutdown { tx }, ShutdownSignal { rx })
    }

    pub fn drain(&self) {
        self.tx.send_if_modified(|p| advance(p, Phase::Draining));
    }

    pub fn abort(&self) {
        self.tx.send_if_modified(|p| advance(p, Phase::Aborting));
    }

    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal { rx: self.tx.subscribe() }
    }
}

fn advance(phase: &mut Phase, to: Phase) -> bool {
    let moved = *phase < to;
    if moved {
        *phase = to;
    }
    moved
}

impl ShutdownSignal {
    /// Resolves once the phase is at least `phase`. If the `Shutdown` is dropped, never resolves
    /// (a dropped controller is not an order to stop).
    pub async fn reached(&self, phase: Phase) {
        let mut rx = self.rx.clone();
        if rx.wait_for(|p| *p >= phase).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn os_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn phases_only_move_forward() {
        let (shutdown, signal) = Shutdown::new();
        shutdown.abort();
        shutdown.drain();
        assert_eq!(signal.phase(), Phase::Aborting);
        signal.reached(Phase::Draining).await;
    }
}
