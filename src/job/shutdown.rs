//! A shutdown request that escalates, as operators expect of a long run: the first signal
//! (SIGINT or SIGTERM) lets the round in flight finish and stores what was measured; the second
//! abandons the round (its unfinished operations are not recorded) and still stores the rest; a
//! third exits at once.

use tokio::sync::watch;

/// Printed at the second signal (docs/operations.md quotes it).
pub const ABANDON_MESSAGE: &str =
    "second signal: abandoning the round in flight (nothing of it is recorded) \
     and storing the rest (a third signal exits at once)";

/// Printed at the third signal, before exiting with status 130.
pub const EXIT_MESSAGE: &str = "third signal: exiting now, without storing what is held";

/// How far a shutdown has gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Keep running.
    Running,
    /// Finish the round in flight, then stop.
    Finish,
    /// Abandon the round in flight, then stop.
    Abandon,
}

/// Watches for a shutdown request; cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<Stage>);

/// Requests a shutdown by hand (tests, embedding).
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<Stage>);

impl ShutdownTrigger {
    /// Moves the shutdown on to `stage` (never back).
    pub fn request(&self, stage: Stage) {
        self.0.send_if_modified(|current| {
            let later = stage > *current;
            if later {
                *current = stage;
            }
            later
        });
    }
}

impl Shutdown {
    /// A shutdown that only `ShutdownTrigger` requests.
    pub fn manual() -> (ShutdownTrigger, Self) {
        let (set, watch) = watch::channel(Stage::Running);
        (ShutdownTrigger(set), Self(watch))
    }

    /// A shutdown requested by SIGINT/SIGTERM (what Ctrl-C, ECS and compose send), stage by
    /// stage; must be called inside an actix `System`. `hint` is printed at the first signal.
    pub fn on_signals(hint: &'static str) -> Self {
        let (trigger, shutdown) = Self::manual();
        actix::spawn(async move {
            termination_signal().await;
            if !hint.is_empty() {
                eprintln!("\n{hint}");
            }
            trigger.request(Stage::Finish);
            termination_signal().await;
            eprintln!("\n{ABANDON_MESSAGE}");
            trigger.request(Stage::Abandon);
            termination_signal().await;
            eprintln!("\n{EXIT_MESSAGE}");
            std::process::exit(130);
        });
        shutdown
    }

    /// The stage reached so far.
    pub fn stage(&self) -> Stage {
        *self.0.borrow()
    }

    /// Whether a shutdown was requested.
    pub fn requested(&self) -> bool {
        self.stage() >= Stage::Finish
    }

    /// Resolves once the shutdown reached `stage` (never, if nobody can request it any more).
    pub async fn reached(&mut self, stage: Stage) {
        if self.0.wait_for(|current| *current >= stage).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the run");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn stages_only_move_forward() {
        let (trigger, mut shutdown) = Shutdown::manual();
        assert!(!shutdown.requested());
        trigger.request(Stage::Abandon);
        trigger.request(Stage::Finish);
        assert_eq!(shutdown.stage(), Stage::Abandon);
        shutdown.reached(Stage::Finish).await;
        assert!(shutdown.requested());
    }
}
