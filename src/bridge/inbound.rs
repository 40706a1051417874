//! The synccheck → webwxsync loop of a live session, whose answers are committed to the spool
//! with their sync keys. It tells the [`LoginPolicy`] of every successful sync and asks it
//! before each synccheck whether the quiet session needs a re-check.
use std::collections::HashSet;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::login_policy::{Decision, Happened, LoginPolicy};
use super::{log_drops, Bridge};
use crate::event::{ContactsEvent, ContactsKind, Event, Origin, Receipt};
use crate::spool::{Kind, NewEntry};
use crate::wechat::client::WxError;
use crate::wechat::message;
use crate::wechat::session::{Session, SyncKeys};

impl Bridge {
    /// synccheck → webwxsync until the session ends, a logout is requested, or shutdown.
    /// Timeouts, connection errors and 5xx are retried with backoff on the same session.
    pub(super) async fn sync_loop(&self, session: &Session, policy: &mut LoginPolicy) -> SyncEnd {
        let mut backoff = self.retry().schedule();
        let mut counter = super::now_ms();
        let mut failing = false;
        let mut committing: Option<Committing<'_>> = None;
        loop {
            if policy.on(Happened::Tick) == Decision::Recheck {
                // A session can go quiet without an error (PROTOCOL.md §10, wechat4u): ask
                // webwxinit whether it still lives.
                tracing::warn!(
                    quiet_for = %humantime::format_duration(self.config.wechat.zombie_after),
                    "no successful sync for wechat.zombie_after; re-validating the session"
                );
                match session.client().init(&session.credentials()).await {
                    Ok(init) => {
                        if session.rotate_skey(&init.skey) {
                            self.save_session(session);
                        }
                    }
                    Err(WxError::SessionExpired { code, .. }) => {
                        // The last answer's messages are kept even though the session ends.
                        if let Some(c) = committing.take() {
                            if let Err(e) = c.durable.await {
                                tracing::error!(cause = %e, "cannot commit the last sync answer");
                            }
                        }
                        return SyncEnd::Expired(code);
                    }
                    Err(e) => tracing::debug!(cause = %e, "re-validation failed; retrying"),
                }
            }
            let creds = session.credentials();
            let keys = committing
                .as_ref()
                .map_or_else(|| session.keys(), |c| c.keys.clone());
            // The last answer is normalized and committed while this synccheck is out: only the
            // next webwxsync, whose SyncKey acknowledges that answer (PROTOCOL.md §7), waits
            // for it. Far from the servers this hides the work in a round trip.
            let durable = async {
                match committing.take() {
                    Some(c) => c.durable.await,
                    None => Ok(()),
                }
            };
            // A stop or a logout cuts the synccheck short, never the commit: the answer it
            // holds was already taken from WeChat.
            let check = async {
                tokio::select! {
                    _ = self.shutdown.cancelled() => Err(SyncEnd::Shutdown),
                    _ = self.logout.notified() => Err(SyncEnd::LoggedOut),
                    r = session.client().synccheck(&creds, keys.for_synccheck(), counter) => Ok(r),
                }
            };
            let (check, durable) = tokio::join!(check, durable);
            let check = match check {
                Ok(check) => check,
                Err(end) => {
                    if let Err(e) = durable {
                        tracing::error!(cause = %e, "cannot commit the last sync answer");
                    }
                    return end;
                }
            };
            counter += 1;
            let result = match (check, durable) {
                (_, Err(e)) | (Err(e), _) => Err(e),
                (Ok(c), Ok(())) if c.selector == 0 => Ok(None),
                (Ok(_), Ok(())) => self.sync_once(session).await,
            };
            match result {
                Ok(next) => {
                    committing = next;
                    if failing {
                        tracing::info!("syncing again");
                        failing = false;
                    }
                    policy.on(Happened::Synced);
                    self.last_sync.send_replace(Some(Instant::now()));
                    backoff = self.retry().schedule();
                }
                Err(WxError::SessionExpired { code, .. }) => return SyncEnd::Expired(code),
                Err(e) => {
                    crate::metrics::retry("sync");
                    // Logged once per outage, not once per retry.
                    if failing {
                        tracing::debug!(cause = %e, "sync failed again");
                    } else {
                        tracing::warn!(cause = %e, "sync failed; retrying on the same session");
                        failing = true;
                    }
                    let d = backoff.next().unwrap_or(self.config.retry.max);
                    if !self.nap(d).await {
                        return SyncEnd::Shutdown;
                    }
                }
            }
        }
    }

    /// One webwxsync: contacts first (so names resolve), then the messages; the new events,
    /// their MsgIds and the new keys go to the spool in one transaction. The requests are made
    /// here; what needs none (normalizing, the commit) is handed back to run beside the next
    /// synccheck (None: nothing to commit).
    async fn sync_once<'a>(
        &'a self,
        session: &'a Session,
    ) -> Result<Option<Committing<'a>>, WxError> {
        let creds = session.credentials();
        let resp = session
            .client()
            .sync(&creds, &session.keys().sync_key)
            .await?;
        // An answer may repeat the skey it already has: the session file (an fsync) is
        // written only when it changed.
        if session.rotate_skey(&resp.skey) {
            self.save_session(session);
        }

        let changes = session
            .with_book_mut(|b| b.apply_changes(resp.mod_contact_list, resp.del_contact_list));
        let mut touched: Vec<String> = changes
            .added
            .iter()
            .chain(&changes.modified)
            .map(|c| c.id.clone())
            .collect();
        let removed: Vec<String> = changes.removed.iter().map(|c| c.id.clone()).collect();

        // WeChat counts this answer as delivered: whatever happens to the lookup, its messages
        // are committed (with names falling back to ids), and only then does an expired
        // session end the loop.
        let mut ended = None;
        let missing = session.book().missing_for(&resp.add_msg_list);
        if !missing.is_empty() {
            match session.client().batch_get_contacts(&creds, &missing).await {
                Ok(found) => {
                    session.with_book_mut(|b| b.apply_batch(&missing, found));
                    // A group (or person) new to the book, or a group with new members.
                    touched.extend(missing.iter().map(|m| {
                        if m.encry_chat_room_id.is_empty() {
                            m.user_name.clone()
                        } else {
                            m.encry_chat_room_id.clone()
                        }
                    }));
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot fetch unknown contacts; names fall back to ids");
                    if e.is_session_expired() {
                        ended = Some(e);
                    }
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let ambiguous = self.follow_contacts(session, &touched, &removed);
        if !changes.is_empty() || !ambiguous.is_empty() {
            self.publish(Event::from(ContactsEvent {
                kind: ContactsKind,
                account: self.config.account.clone(),
                time: OffsetDateTime::now_utc(),
                added: changes.added,
                modified: changes.modified,
                removed: changes.removed,
                ambiguous,
            }))
            .await;
        }

        let ids: Vec<String> = resp.add_msg_list.iter().map(|m| m.msg_id.clone()).collect();
        let mut keys = session.keys();
        let keys_changed = keys.update(resp.sync_key, resp.sync_check_key);
        if !keys_changed && ids.is_empty() {
            return ended.map_or(Ok(None), Err);
        }
        let next = keys.clone();
        let messages = resp.add_msg_list;
        // What follows needs no more requests: it runs while the next synccheck is out, and
        // the next webwxsync waits for it (see `Committing`).
        let durable = async move {
            let unseen = self
                .spool
                .unseen(ids.clone())
                .await
                .map_err(|e| WxError::Garbage {
                    endpoint: "spool",
                    detail: e.to_string(),
                })?;
            let self_name = session.user().user_name.clone();
            let mut in_batch = HashSet::new();
            let mut entries = Vec::new();
            // Indices of the entries held for their media, with a copy of their payload.
            let mut held = Vec::new();
            let mut types = Vec::new();
            for (msg, new) in messages.iter().zip(unseen) {
                if !new || !in_batch.insert(msg.msg_id.as_str()) {
                    continue;
                }
                if msg.from_user_name == self_name {
                    self.sent.settle().await;
                }
                let sent_by = self.sent.lookup(&msg.msg_id);
                let event = {
                    let book = session.book();
                    let ctx = message::Context {
                        account: &self.config.account,
                        book: &book,
                        sent_by_bridge: sent_by.as_ref().map(|e| e.request_id.as_deref()),
                    };
                    message::normalize(msg, &ctx)
                };
                let Some(mut event) = event else { continue };
                event.chat.key = self.key_of(&event.chat.id);
                event.from.key = self.key_of(&event.from.id);
                let mut echo = sent_by;
                if event.origin == Origin::Phone {
                    // An echo that carries a MsgId of its own: recognised by chat and text.
                    let key = event
                        .text
                        .clone()
                        .or_else(|| super::sent::echo_key_of(event.message_type));
                    echo = key.and_then(|key| self.sent.claim_echo(&event.chat.id, &key));
                    if let Some(e) = &echo {
                        event.origin = Origin::Bridge;
                        event.request_id = Some(e.request_id.clone());
                    }
                }
                // The first echo of a send proves WeChat stored it: its receipt goes with it.
                let receipt = echo.filter(|e| e.first).and_then(|e| {
                    let msg_id = e.msg_id.unwrap_or_else(|| msg.msg_id.clone());
                    super::receipts::entry(&Receipt::echoed(e.request_id, msg_id))
                });
                types.push(event.message_type);
                let wait = super::media::wanted(&self.media.config, &event);
                match event.to_json() {
                    Ok(payload) => {
                        if wait {
                            held.push((entries.len() as u32, payload.clone()));
                        }
                        entries.push(NewEntry {
                            kind: Kind::Message,
                            id: msg.msg_id.clone(),
                            payload,
                            reply_to: None,
                        })
                    }
                    Err(e) => {
                        tracing::error!(cause = %e, msg_id = %msg.msg_id, "cannot serialize an event")
                    }
                }
                entries.extend(receipt);
            }

            failpoint("after_sync_before_commit");
            let holding = held.iter().map(|(i, _)| *i).collect();
            let committed = self
                .spool
                .commit_sync_holding(entries, holding, ids, Some(encode_keys(&keys)))
                .await
                .map_err(|e| WxError::Garbage {
                    endpoint: "spool",
                    detail: e.to_string(),
                })?;
            log_drops(&committed.dropped);
            crate::metrics::messages_received(&types);
            session.update_keys(keys.sync_key, keys.sync_check_key);
            if !committed.seqs.is_empty() {
                self.wake.notify_waiters();
            }
            for (index, payload) in held {
                let seq = committed.seqs[index as usize];
                self.hand_to_downloader(seq, payload);
            }
            Ok(())
        };
        if let Some(e) = ended {
            durable.await?;
            return Err(e);
        }
        Ok(Some(Committing {
            keys: next,
            durable: Box::pin(durable),
        }))
    }
}

/// A webwxsync answer still being normalized and committed.
struct Committing<'a> {
    /// The keys the answer brought: the next synccheck may use them at once.
    keys: SyncKeys,
    /// Resolves once the answer's events, MsgIds and keys are durable and the session holds
    /// the keys (the sinks woken); the next webwxsync must not go out before.
    durable: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), WxError>> + Send + 'a>>,
}

/// Why a sync loop ended.
pub(super) enum SyncEnd {
    /// The process is stopping; the session is kept.
    Shutdown,
    /// WeChat ended the session with this code.
    Expired(i64),
    /// A logout was requested.
    LoggedOut,
}

/// Crash-recovery tests kill the process at a named point: `WXBRIDGE_FAILPOINT=<name>`.
/// Only debug builds look.
pub(super) fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("WXBRIDGE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// The sync keys as the spool keeps them (opaque bytes to it): `SyncKeys` as JSON
/// (`{"sync_key":…,"sync_check_key":…}`), as earlier versions stored them.
pub(super) fn encode_keys(keys: &SyncKeys) -> Vec<u8> {
    // Plain numbers and lists: serializing them cannot fail.
    serde_json::to_vec(keys).unwrap_or_default()
}

pub(super) fn decode_keys(bytes: &[u8]) -> Result<SyncKeys, serde_json::Error> {
    serde_json::from_slice(bytes)
}
