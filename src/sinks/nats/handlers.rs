//! What comes in over NATS (send commands, re-login requests, state, QR and contacts requests)
//! and the state and QR published on change. Each loop owns its task and stops at shutdown; the
//! subscriptions survive reconnects on their own (async-nats subscribes them again).
use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{NatsError, Subjects, QUEUE_GROUP};
use crate::event::{LoginQr, Roster, SessionStatus};
use crate::sinks::{Control, Intake, Origin};

/// Subscribes the incoming subjects and spawns their loops and the state and QR publishers.
/// The subscriptions are only queued here, so this works while the server is still away.
pub(super) async fn spawn(
    client: &Client,
    subjects: &Subjects,
    control: &Control,
    tasks: &TaskTracker,
) -> Result<(), NatsError> {
    let subscribe_failed = |subject: &str, e: async_nats::SubscribeError| {
        NatsError::Client(format!("cannot subscribe to `{subject}`: {e}"))
    };
    let send = client
        .queue_subscribe(subjects.send.clone(), QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| subscribe_failed(&subjects.send, e))?;
    let relogin = client
        .queue_subscribe(subjects.relogin.clone(), QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| subscribe_failed(&subjects.relogin, e))?;
    let logout = client
        .queue_subscribe(subjects.logout.clone(), QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| subscribe_failed(&subjects.logout, e))?;
    let state_get = client
        .subscribe(subjects.state_get.clone())
        .await
        .map_err(|e| subscribe_failed(&subjects.state_get, e))?;
    let qr_get = client
        .subscribe(subjects.qr_get.clone())
        .await
        .map_err(|e| subscribe_failed(&subjects.qr_get, e))?;
    let contacts_get = client
        .subscribe(subjects.contacts_get.clone())
        .await
        .map_err(|e| subscribe_failed(&subjects.contacts_get, e))?;

    let shutdown = &control.shutdown;
    tasks.spawn(forward_commands(
        send,
        control.intake.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(forward_request(
        relogin,
        "re-login",
        control.relogin.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(forward_request(
        logout,
        "logout",
        control.logout.clone(),
        shutdown.clone(),
    ));
    let mirror = Mirror {
        client,
        tasks,
        shutdown,
    };
    mirror.spawn(state_get, &subjects.state, &control.status, state_payload);
    mirror.spawn(qr_get, &subjects.qr, &control.qr, qr_payload);
    // DESIGN.md has no contacts subject on change: the retained MQTT topic's counterpart is
    // the request alone.
    tasks.spawn(answer_requests(
        contacts_get,
        client.clone(),
        control.roster.clone(),
        roster_payload,
        shutdown.clone(),
    ));
    Ok(())
}

/// What a watched value (the state, the QR) needs on NATS: its `.get` requests answered and
/// every change published.
struct Mirror<'a> {
    client: &'a Client,
    tasks: &'a TaskTracker,
    shutdown: &'a CancellationToken,
}

impl Mirror<'_> {
    fn spawn<T: Clone + PartialEq + Send + Sync + 'static>(
        &self,
        get: Subscriber,
        subject: &str,
        value: &watch::Receiver<T>,
        payload: fn(&T) -> Bytes,
    ) {
        self.tasks.spawn(answer_requests(
            get,
            self.client.clone(),
            value.clone(),
            payload,
            self.shutdown.clone(),
        ));
        self.tasks.spawn(publish_changes(
            self.client.clone(),
            subject.to_owned(),
            value.clone(),
            payload,
            self.shutdown.clone(),
        ));
    }
}

/// DESIGN's session state JSON `{"state","since","reason"}`, for `.state` and `.state.get`.
pub(super) fn state_payload(status: &SessionStatus) -> Bytes {
    serde_json::to_vec(status).unwrap_or_default().into()
}

/// The QR JSON for `.qr` and `.qr.get`; empty when no scan is awaited.
pub(super) fn qr_payload(qr: &Option<LoginQr>) -> Bytes {
    qr.as_ref().map(LoginQr::to_json).unwrap_or_default().into()
}

/// The contacts with their keys for `.contacts.get`: a JSON array, `[]` while logged out.
pub(super) fn roster_payload(roster: &std::sync::Arc<Roster>) -> Bytes {
    serde_json::to_vec(&**roster).unwrap_or_default().into()
}

/// Hands each send command to the bridge, one at a time so they keep their order. The reply
/// subject travels with it; the bridge answers through the spool (a result entry with
/// `reply_to`), which the sink publishes.
async fn forward_commands(mut sub: Subscriber, intake: Intake, shutdown: CancellationToken) {
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            msg = sub.next() => match msg {
                Some(msg) => msg,
                None => return,
            },
        };
        let origin = Origin::Nats {
            reply: msg.reply.as_ref().map(|s| s.to_string()),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = intake.submit(msg.payload.to_vec(), origin) => accepted,
        };
        if !accepted {
            tracing::debug!(
                subject = %msg.subject,
                "send command not taken: the bridge is stopping"
            );
        }
    }
}

/// Notifies `request` (the bridge's relogin or logout) for each message, whatever it holds.
async fn forward_request(
    mut sub: Subscriber,
    what: &'static str,
    request: std::sync::Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            msg = sub.next() => match msg {
                Some(_) => {
                    tracing::info!("{what} requested over NATS");
                    request.notify_one();
                }
                None => return,
            },
        }
    }
}

/// Answers each request with the current value; a message without a reply subject is ignored.
async fn answer_requests<T>(
    mut sub: Subscriber,
    client: Client,
    value: watch::Receiver<T>,
    payload: fn(&T) -> Bytes,
    shutdown: CancellationToken,
) {
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return,
            msg = sub.next() => match msg {
                Some(msg) => msg,
                None => return,
            },
        };
        let Some(reply) = msg.reply else {
            tracing::debug!(subject = %msg.subject, "not a request (no reply subject); ignored");
            continue;
        };
        let body = payload(&value.borrow());
        if let Err(e) = client.publish(reply, body).await {
            tracing::warn!(subject = %msg.subject, cause = %e, "cannot answer a request");
        }
    }
}

/// Publishes the value each time it changes (not the value it has at start).
async fn publish_changes<T: Clone + PartialEq>(
    client: Client,
    subject: String,
    mut value: watch::Receiver<T>,
    payload: fn(&T) -> Bytes,
    shutdown: CancellationToken,
) {
    let mut last = value.borrow_and_update().clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = value.changed() => if changed.is_err() {
                return;
            },
        }
        let now = value.borrow_and_update().clone();
        if now == last {
            continue;
        }
        let body = payload(&now);
        last = now;
        let published = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = client.publish(subject.clone(), body) => r,
        };
        if let Err(e) = published {
            tracing::warn!(subject = %subject, cause = %e, "cannot publish a change");
        }
    }
}
