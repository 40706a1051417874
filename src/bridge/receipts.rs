//! Receipts (DESIGN.md "Receipts"): news about a command on top of its one result, spooled
//! like every event so that a broker that is down loses none.
//!
//! - `queued`: a command has waited [`QUEUED_AFTER`] and is still in the queue. The sender
//!   runs each of its waits (no session, the `send.rate` throttle) through
//!   [`Bridge::waiting`], which, once per second of the wait, gives every queued command that
//!   has waited that long and has had no `queued` receipt yet one with its position. Any other
//!   wait point calls [`Bridge::on_waiting`] with the command and its position. Which
//!   commands have had theirs is kept in the spool (the value [`NOTED`], held for the group
//!   commit that stores the receipts), so a command still queued after a restart gets no
//!   second one: a `queued` receipt is once per command.
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

/// The name of the spool value that holds the queue ids of [`Noted`].
const NOTED: &str = "receipts_queued";

/// The queued commands (by queue id) that have had their `queued` receipt; `None` until read
/// from the spool. Queue ids are never reused, and the ids of commands that left the queue
/// are dropped, so the set stays as small as the queue.
#[derive(Default)]
pub(super) struct Noted(Mutex<Option<HashSet<u64>>>);

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
        let unread = self.receipts_noted.0.lock().is_ok_and(|n| n.is_none());
        if unread {
            let stored = self.noted_stored().await;
            if let Ok(mut noted) = self.receipts_noted.0.lock() {
                noted.get_or_insert(stored);
            }
        }
        let now_ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let mut due = Vec::new();
        {
            let Ok(mut noted) = self.receipts_noted.0.lock() else {
                return;
            };
            let noted = noted.get_or_insert_with(HashSet::new);
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
            if !due.is_empty() {
                // Held before the receipts are appended, so it is durable with them (or
                // before them): a receipt stored is a mark stored.
                let mut ids: Vec<u64> = noted.iter().copied().collect();
                ids.sort_unstable();
                match serde_json::to_vec(&ids) {
                    Ok(value) => self.spool.hold_value(NOTED, value),
                    Err(e) => {
                        tracing::error!(cause = %e, "cannot encode the queued receipts' marks")
                    }
                }
            }
        }
        for (request_id, position) in due {
            self.on_waiting(request_id.as_deref(), position).await;
        }
    }

    /// The marks a previous run stored; none when there are none or they cannot be read (then
    /// a command still queued may get a second `queued` receipt, which is all that is lost).
    async fn noted_stored(&self) -> HashSet<u64> {
        match self.spool.value(NOTED).await {
            Ok(Some(bytes)) => serde_json::from_slice::<Vec<u64>>(&bytes)
                .map(|ids| ids.into_iter().collect())
                .unwrap_or_else(|e| {
                    tracing::warn!(cause = %e, "unreadable marks of queued receipts; starting afresh");
                    HashSet::new()
                }),
            Ok(None) => HashSet::new(),
            Err(e) => {
                tracing::warn!(cause = %e, "cannot read the marks of queued receipts");
                HashSet::new()
            }
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
