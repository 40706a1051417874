//! The JSON and binary endpoints: health, readiness, metrics, send, relogin, contacts, the QR
//! and the page's status document.
use std::hash::{Hash, Hasher};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics::{counter, gauge};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use super::auth::refuse;
use super::{Account, Shared};
use crate::event::{parse_rfc3339, rfc3339, ErrorCode, SendResult, SessionState};
use crate::sinks::{Accepted, Origin};

/// How much longer than the command's own deadline `POST /send` waits for its result: the
/// sender answers `expired` at the deadline, so this only covers a send in progress.
const SEND_MARGIN: Duration = Duration::from_secs(30);

const STATES: [SessionState; 5] = [
    SessionState::Starting,
    SessionState::Online,
    SessionState::LoginRequired,
    SessionState::LoginForbidden,
    SessionState::Offline,
];

/// `GET /healthz`: the process is alive and serving.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when every account's session is online and every sink connected, else
/// 503 with the reasons. With several accounts each account's part is listed under
/// `accounts` and each problem names its account.
pub async fn readyz(State(state): State<Shared>) -> Response {
    let mut problems = Vec::new();
    let mut parts = Vec::with_capacity(state.accounts.len());
    for account in &state.accounts {
        let name = &account.control.account;
        let whose = |problem: String| {
            if state.several {
                format!("account {name}: {problem}")
            } else {
                problem
            }
        };
        let status = account.control.status.borrow().clone();
        if status.state != SessionState::Online {
            let reason = if status.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", status.reason)
            };
            problems.push(whose(format!("session is {}{reason}", status.state)));
        }
        let sinks: Vec<Value> = account
            .sinks
            .iter()
            .map(|s| {
                let connected = s.connected();
                if !connected {
                    problems.push(whose(format!("sink {} is not connected", s.name())));
                }
                json!({ "name": s.name(), "connected": connected })
            })
            .collect();
        parts.push(json!({
            "account": name,
            "session": { "state": status.state, "reason": status.reason },
            "sinks": sinks,
        }));
    }
    let ready = problems.is_empty();
    let body = match parts.pop() {
        Some(Value::Object(mut only)) if !state.several && parts.is_empty() => {
            only.remove("account");
            let mut body = serde_json::Map::new();
            body.insert("ready".to_owned(), json!(ready));
            body.extend(only);
            body.insert("problems".to_owned(), json!(problems));
            Value::Object(body)
        }
        last => {
            parts.extend(last);
            json!({ "ready": ready, "accounts": parts, "problems": problems })
        }
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// `GET /metrics`: sets the gauges that are computed on demand, each account's with its
/// `account` label, then renders.
pub async fn metrics(State(state): State<Shared>) -> Response {
    let now_ms = now_ms();
    for account in &state.accounts {
        let name = account.control.account.as_str();
        let labels = |pairs: &[(&'static str, String)]| crate::metrics::account_labels(name, pairs);
        for sink in &account.sinks {
            let sink_label = [("sink", sink.name().to_owned())];
            gauge!("wxbridge_sink_connected", labels(&sink_label))
                .set(f64::from(u8::from(sink.connected())));
            match account.spool.backlog(sink.name()).await {
                Ok(b) => {
                    gauge!("wxbridge_spool_depth", labels(&sink_label)).set(b.depth as f64);
                    let age = b
                        .oldest_ms
                        .map_or(0.0, |t| now_ms.saturating_sub(t) as f64 / 1000.0);
                    gauge!(
                        "wxbridge_spool_oldest_event_age_seconds",
                        labels(&sink_label)
                    )
                    .set(age);
                    counter!("wxbridge_spool_dropped_events_total", labels(&sink_label))
                        .absolute(b.dropped);
                }
                Err(e) => {
                    tracing::warn!(account = name, sink = sink.name(), cause = %e, "cannot read the backlog")
                }
            }
        }
        if let Ok(depth) = account.spool.queue_depth().await {
            gauge!("wxbridge_send_queue_depth", labels(&[])).set(depth as f64);
        }
        let current = account.control.status.borrow().state;
        for s in STATES {
            gauge!(
                "wxbridge_session_state",
                labels(&[("state", s.as_str().to_owned())])
            )
            .set(f64::from(u8::from(s == current)));
        }
        let (today, per_day) = account.sends_today.get();
        gauge!("wxbridge_sends_today", labels(&[])).set(f64::from(today));
        gauge!("wxbridge_sends_per_day_limit", labels(&[])).set(f64::from(per_day));
        if let Some(at) = *account.last_sync.borrow() {
            gauge!("wxbridge_last_sync_age_seconds", labels(&[])).set(at.elapsed().as_secs_f64());
        }
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// A plain per-account path while several accounts run: 404 naming the paths to use.
pub async fn per_account(State(state): State<Shared>, uri: Uri) -> Response {
    let names: Vec<&str> = state
        .accounts
        .iter()
        .map(|a| a.control.account.as_str())
        .collect();
    let path = uri.path();
    let example = names.first().copied().unwrap_or("<account>");
    refuse(
        StatusCode::NOT_FOUND,
        &format!(
            "several accounts run here: use /accounts/<account>{path} (for example \
             /accounts/{example}{path}); accounts: {}",
            names.join(", ")
        ),
    )
}

/// `POST /send`: the body is a send command (DESIGN.md "Outbound command and result"); the
/// answer is its result, 200 whether it is `ok` or not. 503 at shutdown; 504 with a `timeout`
/// result when no result came in time (the command stays queued and its result still goes to
/// the result topics). A `multipart/form-data` body carries a file too ([`super::upload`]).
pub async fn send(State(state): State<Account>, request: Request) -> Response {
    if super::upload::is_multipart(request.headers()) {
        return super::upload::send(state, request).await;
    }
    match Bytes::from_request(request, &()).await {
        Ok(body) => submit(&state, body).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// Hands a JSON command to the intake and answers its result (see [`send`]).
pub(super) async fn submit(state: &Account, body: Bytes) -> Response {
    let wait = send_wait(&body, state.send_ttl);
    // Subscribed before submitting, so the result cannot slip past.
    let mut results = state.control.results.subscribe();
    let id = match state
        .control
        .intake
        .submit_for(body.to_vec(), Origin::Http)
        .await
    {
        None => return refuse(StatusCode::SERVICE_UNAVAILABLE, "the bridge is stopping"),
        Some(Accepted::Answered(result)) => return Json(result).into_response(),
        Some(Accepted::Queued(id)) => id,
    };
    let wait_for_ours = async {
        loop {
            match results.recv().await {
                Ok((got, result)) if got == id => return Some(result),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "POST /send fell behind the results; its result may be missed"
                    );
                }
                Err(RecvError::Closed) => return None,
            }
        }
    };
    let shutdown = state.control.shutdown.clone();
    tokio::select! {
        r = tokio::time::timeout(wait, wait_for_ours) => match r {
            Ok(Some(result)) => Json(result).into_response(),
            Ok(None) => refuse(StatusCode::SERVICE_UNAVAILABLE, "the bridge is stopping"),
            Err(_) => {
                let rid = request_id(&body);
                let result = SendResult::err(
                    rid,
                    ErrorCode::Timeout,
                    format!(
                        "no result within {} s; the command stays queued and its result goes to the result topics",
                        wait.as_secs()
                    ),
                );
                (StatusCode::GATEWAY_TIMEOUT, Json(result)).into_response()
            }
        },
        _ = shutdown.cancelled() => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the bridge is stopping; the command stays queued and is sent after the next start",
        ),
    }
}

/// How long to wait for a queued command's result: until its deadline (`expires_at`, else
/// `send.default_ttl` from now) and a margin.
fn send_wait(body: &[u8], ttl: Duration) -> Duration {
    let expires_in = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["expires_at"].as_str().map(str::to_owned))
        .and_then(|s| parse_rfc3339(&s).ok())
        .and_then(|t| Duration::try_from(t - OffsetDateTime::now_utc()).ok())
        .unwrap_or(ttl);
    expires_in.max(ttl) + SEND_MARGIN
}

fn request_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["request_id"].as_str().map(str::to_owned))
}

/// `POST /relogin`: asks the bridge for a new login (it acts while it waits for one: after
/// `login_forbidden` or after QR codes expired unscanned).
pub async fn relogin(State(state): State<Account>) -> Response {
    state.control.relogin.notify_one();
    tracing::info!(account = %state.control.account, "re-login requested over HTTP");
    (StatusCode::ACCEPTED, Json(json!({ "requested": true }))).into_response()
}

/// `GET /contacts`: the current login's contacts and groups, as `wxbridge contacts --json`
/// prints them, each with its contact `key` (`null` when it has none this login); 503 while
/// not logged in.
pub async fn contacts(State(state): State<Account>) -> Response {
    let Some(session) = state.session.borrow().clone() else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "not logged in");
    };
    let roster = state.control.roster.borrow().clone();
    let keys: std::collections::HashMap<&str, &str> = roster
        .iter()
        .filter_map(|e| Some((e.id.as_str(), e.key.as_deref()?)))
        .collect();
    let mut list = session.book().listing();
    for item in &mut list {
        let key = item["id"].as_str().and_then(|id| keys.get(id)).copied();
        item["key"] = json!(key);
    }
    Json(list).into_response()
}

/// `GET /qr.png`: the login QR while a scan is awaited, else 404.
pub async fn qr_png(State(state): State<Account>) -> Response {
    let Some(qr) = state.control.qr.borrow().clone() else {
        return refuse(StatusCode::NOT_FOUND, "no login is waiting for a QR scan");
    };
    (
        [(CONTENT_TYPE, "image/png"), (CACHE_CONTROL, "no-store")],
        qr.png,
    )
        .into_response()
}

/// `GET /api/status`: what the page shows.
pub async fn status(State(state): State<Account>) -> Response {
    let status = state.control.status.borrow().clone();
    let qr = state.control.qr.borrow().as_ref().map(|qr| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        qr.url.hash(&mut h);
        json!({ "version": format!("{:016x}", h.finish()), "expires_at": rfc3339(qr.expires_at) })
    });
    let now_ms = now_ms();
    let mut sinks: Vec<Value> = Vec::with_capacity(state.sinks.len());
    for s in &state.sinks {
        let backlog = state.spool.backlog(s.name()).await.unwrap_or_default();
        sinks.push(json!({
            "name": s.name(),
            "connected": s.connected(),
            "depth": backlog.depth,
            "oldest_age_seconds": backlog.oldest_ms.map(|t| now_ms.saturating_sub(t) / 1000),
            "error": s.last_error(),
        }));
    }
    let queue_depth = state.spool.queue_depth().await.unwrap_or(0);
    let last_sync = state.last_sync.borrow().map(|t| t.elapsed().as_secs_f64());
    let (sent_today, per_day) = state.sends_today.get();
    let body = json!({
        "account": state.control.account,
        // The page offers to sign out only when there is a page session to end.
        "token_required": state.shared.auth.is_some(),
        "state": status.state,
        "reason": status.reason,
        "since": rfc3339(status.since),
        "qr": qr,
        "last_sync_age_seconds": last_sync,
        "queue_depth": queue_depth,
        "sends_today": { "count": sent_today, "per_day": per_day },
        "sinks": sinks,
        "events": state.recent.newest_first(),
    });
    ([(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_waits_for_the_later_of_the_ttl_and_expires_at_and_a_margin() {
        let ttl = Duration::from_secs(600);
        assert_eq!(
            send_wait(br#"{"to":"a","text":"b"}"#, ttl),
            ttl + SEND_MARGIN
        );
        assert_eq!(send_wait(b"not json", ttl), ttl + SEND_MARGIN);
        let later = rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1));
        let body = format!(r#"{{"to":"a","text":"b","expires_at":"{later}"}}"#);
        let wait = send_wait(body.as_bytes(), ttl);
        assert!(
            wait > Duration::from_secs(3500) + SEND_MARGIN
                && wait <= Duration::from_secs(3600) + SEND_MARGIN
        );
    }
}
