//! Receipts (DESIGN.md "Receipts"): news about a command on top of its one result, spooled
//! like every event so that a broker that is down loses none.
//!
//! - `queued`: a command has waited [`QUEUED_AFTER`] and is still in the queue. The sender
//!   runs each of its waits (no session, the `send.rate` throttle) through
//!   [`Bridge::waiting`], which, once per second of the wait, gives every queued command that
//!   has waited that long and has had no `queued` receipt yet one with its position. Any other
//!   wait point calls [`Bridge::on_waiting`] with the command and its position.
//! - `echoed`: the first time a sent message comes back in webwxsync; the sync spools it with
//!   the echo (see `sent` for how an echo is recognised). An answered send whose echo has not
//!   come within `sent::echo_deadline` (2 minutes) is logged and counted by
//!   [`Bridge::echo_watch`]; its result stands.
use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

use super::outbound::Record;
use super::Bridge;
use crate::event::Receipt;
use crate::spool::{Kind, NewEntry};

/// How long a command waits before it gets a `queued` receipt.
pub(super) const QUEUED_AFTER: Duration = Duration::from_secs(1);
/// How many queued commands are looked at for `queued` receipts.
const QUEUE_LOOK: usize = 1000;
/// How often overdue echoes are looked for.
const ECHO_SWEEP: Duration = Duration::from_secs(5);

/// The queued commands (by queue id) that have had their `queued` receipt.
#[derive(Default)]
pub(super) struct Noted(Mutex<HashSet<u64>>);

/// The spool entry of a receipt.
pub(super) fn entry(receipt: &Receipt) -> Option<NewEntry> {
    match serde_json::to_vec(receipt) {
        Ok(payload) => Some(NewEntry {
            kind: Kind::Receipt,
            id: super::new_id(),
            payload,
            reply_to: None,
        }),
        Err(e) => {
            tracing::error!(cause = %e, "cannot serialize a receipt");
            None
        }
    }
}

impl Bridge {
    /// The hook for every wait point: the command `request_id` is waiting at `position`
    /// (1: next to go). Spools its `queued` receipt.
    pub(super) async fn on_waiting(&self, request_id: Option<&str>, position: u32) {
        tracing::debug!(request_id, position, "command waiting");
        if let Some(e) = entry(&Receipt::queued(request_id.map(str::to_owned), position)) {
            self.append(vec![e]).await;
        }
    }

    /// Awaits `wait`, a wait of the sender's; while it lasts, every queued command that has
    /// waited [`QUEUED_AFTER`] gets one `queued` receipt with its position.
    pub(super) async fn waiting<F: Future>(&self, wait: F) -> F::Output {
        let started = tokio::time::Instant::now();
        tokio::pin!(wait);
        let mut tick = tokio::time::interval_at(started + QUEUED_AFTER, QUEUED_AFTER);
        loop {
            // The receipts are noted outside the select, so the wait's output (a watch `Ref`
            // for some waits) is not held across an await: the bridge's tasks must be `Send`
            // to run on a task of their own.
            let waited = tokio::select! {
                done = &mut wait => return done,
                _ = tick.tick() => started.elapsed(),
            };
            self.note_queue(waited).await;
        }
    }

    /// Gives a `queued` receipt to each queued command that has none yet and has waited
    /// [`QUEUED_AFTER`]: since it arrived, or, for the one at the head, `head_waited`.
    pub(super) async fn note_queue(&self, head_waited: Duration) {
        let queue = match self.spool.queued_commands(QUEUE_LOOK).await {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the outbound queue for receipts");
                return;
            }
        };
        let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut due = Vec::new();
        {
            let Ok(mut noted) = self.receipts_noted.0.lock() else {
                return;
            };
            // Forget the commands that left the queue; the rest keep their mark.
            let ids: HashSet<u64> = queue.iter().map(|q| q.id).collect();
            noted.retain(|id| ids.contains(id));
            for (at, queued) in queue.iter().enumerate() {
                if noted.contains(&queued.id) {
                    continue;
                }
                let Ok(record) = serde_json::from_slice::<Record>(&queued.record) else {
                    continue;
                };
                let waited = (now_ms - i128::from(record.received_ms)).max(0);
                let waited = Duration::from_millis(u64::try_from(waited).unwrap_or(u64::MAX));
                if waited.max(if at == 0 { head_waited } else { Duration::ZERO }) < QUEUED_AFTER {
                    continue;
                }
                noted.insert(queued.id);
                let position = u32::try_from(at + 1).unwrap_or(u32::MAX);
                due.push((record.command.request_id, position));
            }
        }
        for (request_id, position) in due {
            self.on_waiting(request_id.as_deref(), position).await;
        }
    }

    /// Until shutdown, logs and counts the answered sends whose echo did not come in time.
    pub(super) async fn echo_watch(&self) {
        while self.nap(ECHO_SWEEP).await {
            for missed in self.sent.overdue() {
                tracing::warn!(
                    request_id = missed.request_id.as_deref().unwrap_or(""),
                    msg_id = missed.msg_id.as_deref().unwrap_or(""),
                    "WeChat took the send but its echo did not come back in the sync"
                );
                crate::metrics::echo_missing();
            }
        }
    }
}
