//! The standing consumer: follows scoring's runs and evaluates every open
//! standing perk program once per run (`Matching::evaluate_standing`).
//!
//! While some program is open it asks scoring which run it serves every
//! `MatchingConfig::standing_poll` (one small `ExportScores` probe, the same
//! the score cache makes) and evaluates the programs not yet evaluated on that
//! run; `StartStandingProgram` wakes it at once. With no open program it only
//! reads the programs table. Several replicas may run it on one database:
//! each grant is a transaction that refuses a second perk to the same account
//! and any perk over the budget or cap (`lift_store::standing`), so the worst
//! a race costs is a repeated judgement. It holds the service weakly, so it
//! stops when the last clone of the service is dropped.

use std::time::Duration;

use crate::Matching;

const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub(crate) fn spawn(m: &Matching) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no tokio runtime: the standing consumer is not running");
        return;
    };
    let weak = m.downgrade();
    let (wake, stop) = m.standing_signals();
    let poll = m.config().standing_poll.max(Duration::from_millis(10));
    rt.spawn(async move {
        let mut wait = poll;
        loop {
            tokio::select! {
                () = stop.wait() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            let Some(m) = Matching::upgrade(&weak) else { return };
            match m.evaluate_standing_new_runs().await {
                Ok(_) => wait = poll,
                Err(e) => {
                    wait = (wait * 2).min(MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in = ?wait, "evaluating standing programs failed");
                }
            }
        }
    });
}
