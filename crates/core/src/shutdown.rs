//! The shutdown signal shared by every long-running stage.
//!
//! One [`Shutdown`] is created per process; SIGINT/SIGTERM (or a test) trigger
//! it and every clone sees it. It only *announces* a stop: each stage decides
//! how to finish its work in flight. It never exits the process itself.

use tokio::sync::watch;

/// A cloneable stop flag that can be awaited.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// What runs just before a second signal ends the process (the binary sets
/// it: stopping the embedded server it started).
static BEFORE_FORCED_EXIT: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what runs before a second signal ends the process; the first call
/// wins.
pub fn before_forced_exit(f: fn()) {
    let _ = BEFORE_FORCED_EXIT.set(f);
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Shutdown { tx, rx }
    }

    /// Asks every holder to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once a stop was asked for (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means every sender is gone, which cannot happen while
        // `self` holds one; treat it as a stop all the same.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Triggers this shutdown on the first SIGINT or SIGTERM. Must be called
    /// inside a tokio runtime. A second signal is left to the default action
    /// only after the first has been handled, so a stuck process can still be
    /// interrupted twice.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let this = self.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            tracing::info!("{name} received: finishing the work in flight, then stopping");
            this.trigger();
            // A second signal means "now": exit without waiting further.
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            tracing::warn!("second signal: exiting at once; the open transaction rolls back");
            if let Some(before) = BEFORE_FORCED_EXIT.get() {
                before();
            }
            std::process::exit(130);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wait_returns_after_trigger() {
        let s = Shutdown::new();
        let c = s.clone();
        assert!(!c.is_triggered());
        let h = tokio::spawn(async move { c.wait().await });
        s.trigger();
        h.await.expect("waiter finished");
        assert!(s.is_triggered());
    }
}
