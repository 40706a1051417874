//! The send scheduler: per-recipient queues over the one durable outbound queue, served
//! fairly. Each pass reads the queue in order; a recipient's first command is its head (order
//! is kept per recipient), and among the heads that `send.limits` lets go now, the recipient
//! served longest ago goes next. A head over a limit waits without holding up anyone else;
//! a command whose deadline passes while its recipient (or, for `per_day` and quiet hours,
//! everyone) is held is answered `limit_exceeded`, naming the limit. A held command gets its
//! `queued` receipt (see `receipts`) like any other that waits. A command whose request_id
//! already has a result sends nothing, so no limit holds it: it is answered with that result
//! (marked duplicate) as soon as it is found held, or when it is picked.
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use time::OffsetDateTime;

use super::allow::display;
use super::limits::{Blocked, Limit};
use super::outbound::{Record, Taken, REQUEST_ID_WINDOW};
use super::Bridge;
use crate::event::{Command, ErrorCode, SendResult};
use crate::limiter::Limiter;
use crate::spool::QueuedCommand;

/// How many queued commands one pass looks at: recipients queued further back wait for the
/// ones in front to be sent or answered.
const SCAN: usize = 1000;

/// A queued command read back.
struct Queued {
    id: u64,
    record: Record,
    target: String,
}

impl Bridge {
    /// Takes queued commands, one at a time, fairly across recipients, until shutdown. A
    /// command in progress at shutdown stays queued and is taken again after a restart.
    pub(super) async fn send_loop(&self) {
        // Before the first command is looked at: the counts decide what may go.
        let counts = super::limits::load(&self.spool, &self.config.state_dir).await;
        self.limits_lock().loaded(counts);
        let rate = &self.config.send.rate;
        let mut limiter = Limiter::new(rate.per_second, rate.burst);
        let mut served: HashMap<String, u64> = HashMap::new();
        let mut turn = 0u64;
        let mut counted = HashSet::new();
        let mut session_rx = self.session.subscribe();
        loop {
            let queued = match self.spool.queued_commands(SCAN).await {
                Ok(q) => q,
                Err(e) => {
                    tracing::error!(cause = %e, "cannot read the outbound queue");
                    if !self.nap(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            let Some(pass) = self.read_back(queued).await else {
                continue;
            };
            self.untighten_reason();
            let next = match self.pick(pass, &served, &mut counted).await {
                Pick::Send(q) => q,
                Pick::Again => continue,
                Pick::Wait(wake) => {
                    session_rx.mark_unchanged();
                    // A wait like the sender's others: the commands held get `queued` receipts.
                    let stopped = self
                        .waiting(async {
                            tokio::select! {
                                _ = self.shutdown.cancelled() => true,
                                _ = self.queue_changed.notified() => false,
                                _ = session_rx.changed() => false,
                                _ = tokio::time::sleep(wake.unwrap_or(Duration::from_secs(3600))) => false,
                            }
                        })
                        .await;
                    if stopped {
                        return;
                    }
                    continue;
                }
            };
            turn += 1;
            served.insert(next.target.clone(), turn);
            if self.repeated(&next).await {
                continue;
            }
            match self.send_one(&next.record, &mut limiter).await {
                None => return,
                // Chosen while logged out, its recipient is over a limit now: the next pass
                // finds it held and serves the others meanwhile.
                Some(Taken::Held) => continue,
                Some(Taken::Answered(result)) => {
                    self.answer(Some(next.id), *result, next.record.reply_to)
                        .await;
                }
            }
        }
    }

    /// The queue's records; an unreadable one is answered `invalid_command` (then `None`:
    /// read the queue again).
    async fn read_back(&self, queued: Vec<QueuedCommand>) -> Option<Vec<Queued>> {
        let mut pass = Vec::with_capacity(queued.len());
        for q in queued {
            match serde_json::from_slice::<Record>(&q.record) {
                Ok(record) => pass.push(Queued {
                    id: q.id,
                    target: target(&record.command),
                    record,
                }),
                Err(e) => {
                    tracing::error!(cause = %e, id = q.id, "unreadable queued command; answering it invalid");
                    let result = SendResult::err(
                        None,
                        ErrorCode::InvalidCommand,
                        "the queued command could not be read back",
                    );
                    self.answer(Some(q.id), result, None).await;
                    return None;
                }
            }
        }
        Some(pass)
    }

    /// The command to send next, or how long until one of the held ones may go or expire.
    async fn pick(
        &self,
        pass: Vec<Queued>,
        served: &HashMap<String, u64>,
        counted: &mut HashSet<u64>,
    ) -> Pick {
        if pass.is_empty() {
            return Pick::Wait(None);
        }
        let session = self.session.borrow().clone();
        let now = self.limits_clock.now();
        let mut heads = HashSet::new();
        let mut held: HashMap<String, Blocked> = HashMap::new();
        let mut ready: Vec<Queued> = Vec::new();
        let mut wake: Option<Duration> = None;
        let mut soonest = |d: Duration| wake = Some(wake.map_or(d, |w| w.min(d)));
        // Only commands still queued need remembering as counted.
        counted.retain(|id| pass.iter().any(|q| q.id == *id));
        for q in pass {
            let left = self.time_left(&q.record);
            if heads.insert(q.target.clone()) {
                // Only with a session can the recipient be named as the counts know it (its key,
                // or its name); without one the sender waits for the login and checks there.
                let blocked = session
                    .as_ref()
                    .and_then(|s| self.resolve(s, &q.record.command).ok())
                    .and_then(|c| {
                        let counted = super::outbound::counted_as(
                            self.key_of(&c.user_name).as_deref(),
                            &display(&c),
                        );
                        self.limits_lock().check(&counted, now).err()
                    });
                match blocked {
                    None => ready.push(q),
                    Some(b) => {
                        // A repeat sends nothing, so no limit holds it: answered at once,
                        // checked when the head is first found held.
                        if !counted.contains(&q.id) && self.repeated(&q).await {
                            return Pick::Again;
                        }
                        let wait = ms(b.until_ms - now.ms);
                        if wait >= left {
                            self.over_limit(q, b).await;
                            return Pick::Again;
                        }
                        if counted.insert(q.id) {
                            waiting(&q, b, wait);
                        }
                        soonest(wait);
                        held.insert(q.target, b);
                    }
                }
            } else if let Some(b) = held.get(&q.target).copied() {
                if left.is_zero() {
                    self.over_limit(q, b).await;
                    return Pick::Again;
                }
                soonest(left);
            }
        }
        // `per_day` and quiet hours hold everyone, also those not named yet (no session).
        if let Some(b) = held.values().copied().find(|b| b.limit.is_global()) {
            for q in ready {
                let left = self.time_left(&q.record);
                if left.is_zero() {
                    self.over_limit(q, b).await;
                    return Pick::Again;
                }
                soonest(left);
            }
            return Pick::Wait(wake);
        }
        let next = ready
            .into_iter()
            .min_by_key(|q| served.get(&q.target).copied().unwrap_or(0));
        if next.is_some() && !held.is_empty() {
            // Others go while these wait, maybe with no wait of the sender's long enough to
            // give them their `queued` receipts: give them now.
            self.note_queue(Duration::ZERO).await;
        }
        match next {
            Some(q) => Pick::Send(Box::new(q)),
            None => Pick::Wait(wake),
        }
    }

    /// Answers a command its limit held past its deadline; a repeated request_id with its
    /// first result (`limit_exceeded` would also replace that result as the one repeats get).
    async fn over_limit(&self, q: Queued, b: Blocked) {
        if self.repeated(&q).await {
            return;
        }
        crate::metrics::limit_hit(b.limit.label());
        tracing::info!(limit = b.limit.key(), request_id = ?q.record.command.request_id, "a send limit held the command past its deadline");
        let result = limit_exceeded(q.record.command.request_id.clone(), b.limit);
        self.answer(Some(q.id), result, q.record.reply_to).await;
    }

    /// True (and answered) when the command's request_id already has a result.
    async fn repeated(&self, q: &Queued) -> bool {
        let Some(rid) = &q.record.command.request_id else {
            return false;
        };
        match self.spool.recent_result(rid, REQUEST_ID_WINDOW).await {
            Ok(Some(previous)) => {
                if let Ok(mut previous) = serde_json::from_slice::<SendResult>(&previous) {
                    // Marked, so a caller that changed the recipient or the text can tell that
                    // this command was not sent.
                    previous.duplicate = true;
                    tracing::info!(request_id = %rid, "repeated request_id; repeating its result");
                    self.answer(Some(q.id), previous, q.record.reply_to.clone())
                        .await;
                    return true;
                }
                false
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot look up the request_id");
                false
            }
        }
    }

    /// How long the command may still wait (`expires_at` or `send.default_ttl`).
    pub(super) fn time_left(&self, record: &Record) -> Duration {
        let received =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(record.received_ms) * 1_000_000)
                .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let deadline = record
            .command
            .expires_at
            .unwrap_or(received + self.config.send.default_ttl);
        (deadline - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO)
    }

    pub(super) fn limits_lock(&self) -> std::sync::MutexGuard<'_, super::limits::Limits> {
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Clears the state's reason that said the limits were tightened, once they are not.
    fn untighten_reason(&self) {
        let now = self.limits_clock.now();
        let status = self.status.borrow().clone();
        if status.reason.starts_with(TIGHTENED) && !self.limits_lock().tightened(now) {
            self.set_state(status.state, "");
        }
    }
}

/// What [`Bridge::pick`] found.
enum Pick {
    Send(Box<Queued>),
    /// Something was answered: read the queue again.
    Again,
    /// Nothing may go now; look again after this long (or when the queue or session changes).
    Wait(Option<Duration>),
}

/// The start of the state's reason while the limits are tightened.
pub(super) const TIGHTENED: &str = "WeChat answered 1205 (too frequent)";

/// The recipient as the command names it: one queue per name.
fn target(cmd: &Command) -> String {
    if let Some(key) = &cmd.to_key {
        return format!("key:{key}");
    }
    match (&cmd.to_id, &cmd.to) {
        (Some(id), _) => format!("id:{id}"),
        (None, Some(to)) => format!("to:{}", to.to_lowercase()),
        (None, None) => String::new(),
    }
}

/// Logs and counts a command that starts waiting for a limit.
fn waiting(q: &Queued, b: Blocked, wait: Duration) {
    crate::metrics::limit_wait(b.limit.label());
    tracing::debug!(limit = b.limit.key(), wait_ms = wait.as_millis() as u64, request_id = ?q.record.command.request_id, "send waits for a limit");
}

pub(super) fn limit_exceeded(rid: Option<String>, limit: Limit) -> SendResult {
    SendResult::err(
        rid,
        ErrorCode::LimitExceeded,
        format!(
            "`{}` held the command past its deadline (expires_at or send.default_ttl)",
            limit.key()
        ),
    )
}

/// Milliseconds as a duration, zero when negative.
pub(super) fn ms(v: i64) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}
