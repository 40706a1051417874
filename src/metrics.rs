//! The Prometheus metrics behind `GET /metrics`: the recorder, its upkeep, the metric names and
//! the helpers the bridge and the sinks call to count what happens.
//!
//! Counters are recorded where things happen (through the `metrics` facade, so they cost nothing
//! when no recorder is installed: one-shot commands and `run` without `http`). Gauges that are
//! cheap to compute (spool depth and age, queue depth, session state, sync age, sink links) are
//! set just before each scrape by the HTTP layer.
//!
//! Every series about one account's work (all but `wxbridge_http_accept_errors_total` and
//! `wxbridge_mqtt_refused_total`, which are the shared listener's and connection's) carries
//! the label `account` besides those in the table: `run` does each account's work inside
//! [`scope`], and the helpers below add the label of the account they run for.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `wxbridge_messages_received_total` | counter | `type` | inbound messages spooled |
//! | `wxbridge_events_delivered_total` | counter | `sink` | spooled entries a sink confirmed |
//! | `wxbridge_delivery_failures_total` | counter | `sink` | failed delivery attempts (each is retried) |
//! | `wxbridge_webhook_replies_dropped_total` | counter | `sink` | replies over `max_replies_per_minute` |
//! | `wxbridge_spool_dropped_events_total` | counter | `sink` | dropped at `spool.max_events_per_sink` |
//! | `wxbridge_spool_fsyncs_total` | counter | – | syncs to storage by the spool: journal appends (one per group of writes) and durable database commits (checkpoints) |
//! | `wxbridge_spool_depth` | gauge | `sink` | entries waiting for the sink |
//! | `wxbridge_spool_oldest_event_age_seconds` | gauge | `sink` | age of the oldest waiting entry (0 when none) |
//! | `wxbridge_sink_connected` | gauge | `sink` | 1 when the sink's link is up |
//! | `wxbridge_retries_total` | counter | `op` | WeChat calls retried: `sync`, `resume`, `login`, `send`, `media` |
//! | `wxbridge_media_downloads_total` | counter | `kind`, `outcome` | inbound media by outcome: `stored`, `found` (stored before a restart), `too_large`, `expired`, `fetch_failed` |
//! | `wxbridge_media_downloaded_bytes_total` | counter | – | bytes of inbound media downloaded |
//! | `wxbridge_media_wait_seconds` | histogram | – | how long held events waited for their media, spooled to released |
//! | `wxbridge_send_results_total` | counter | `result` | results: `ok` or the error code |
//! | `wxbridge_send_throttle_wait_seconds` | histogram | – | sends that waited for the throttle (`_count`) and how long (`_sum`) |
//! | `wxbridge_sends_total` | counter | `class` | messages WeChat took, by recipient class: `person`, `group`, `filehelper` |
//! | `wxbridge_sends_today` | gauge | – | messages sent since local midnight (`send.limits.per_day` counts these) |
//! | `wxbridge_sends_per_day_limit` | gauge | – | `send.limits.per_day` as it is now (halved for an hour after a 1205) |
//! | `wxbridge_send_limit_waits_total` | counter | `limit` | commands that waited for a `send.limits` limit |
//! | `wxbridge_send_limit_hits_total` | counter | `limit` | commands answered `limit_exceeded`, by limit |
//! | `wxbridge_send_queue_depth` | gauge | – | commands in the outbound queue |
//! | `wxbridge_session_state` | gauge | `state` | 1 for the current session state, 0 for the others |
//! | `wxbridge_last_sync_age_seconds` | gauge | – | seconds since the last successful sync |
//! | `wxbridge_logins_total` | counter | `kind` | logins: `stored`, `push`, `qr` |
//! | `wxbridge_http_accept_errors_total` | counter | – | connections the HTTP API failed to accept (out of descriptors…) |
//! | `wxbridge_media_stored_bytes` | gauge | – | bytes in the media store |
//! | `wxbridge_media_stored_files` | gauge | – | files in the media store |
//! | `wxbridge_media_evicted_total` | counter | `reason` | files evicted from the media store: `age` (unused for `media.max_age`), `size` (least recently used, over `media.max_bytes`) |
//! | `wxbridge_media_evicted_bytes_total` | counter | – | bytes those files held |
//! | `wxbridge_mqtt_refused_total` | counter | `reason` | incoming MQTT publishes refused: `queue_full` (QoS 0 commands dropped behind a slow bridge), `too_large` (over `send.max_bytes`, answered `invalid_command`; oversized Home Assistant publishes, ignored) |
//! | `wxbridge_account_restarts_total` | counter | – | times the account's bridge was restarted after a panic in its tasks |
//! | `wxbridge_media_skipped_total` | counter | `sink`, `reason` | files an event refers to that a bus could not carry before it (the event went anyway): `missing` (not in the media store: evicted), `too_large` (over MQTT's packet limit), `failed` (the NATS object store refused it) |
use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Label, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::event::{MessageType, SendResult};

/// How often the recorder's upkeep runs (CRATES.md §2.6: without the exporter's own listener,
/// nobody else does it).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Buckets of the media wait histogram, in seconds: `media.wait` is 20 s by default.
const MEDIA_WAIT_BUCKETS: [f64; 9] = [0.05, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0];

/// Buckets of the throttle wait histogram, in seconds: the throttle spaces sends by
/// `1 / send.rate.per_second` (2 s by default) and halves the rate after a 1205.
const THROTTLE_BUCKETS: [f64; 9] = [0.05, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0];

/// The process-wide recorder's handle; installed on first use.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and answers its handle. Metrics
/// recorded before this are lost; `run` calls it before it starts anything.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("wxbridge_send_throttle_wait_seconds".to_owned()),
                    &THROTTLE_BUCKETS,
                )
                .expect("the bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full("wxbridge_media_wait_seconds".to_owned()),
                    &MEDIA_WAIT_BUCKETS,
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(cause = %e, "a metrics recorder is already installed; /metrics stays empty");
            }
            describe();
            preset();
            handle
        })
        .clone()
}

/// Runs the recorder's upkeep every few seconds until `shutdown`.
pub async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(UPKEEP_EVERY) => handle.run_upkeep(),
        }
    }
}

fn describe() {
    describe_counter!(
        "wxbridge_messages_received_total",
        "Inbound WeChat messages spooled, by message type"
    );
    describe_counter!(
        "wxbridge_events_delivered_total",
        "Spooled entries a sink confirmed"
    );
    describe_counter!(
        "wxbridge_delivery_failures_total",
        "Failed delivery attempts per sink; each is retried with backoff"
    );
    describe_counter!(
        "wxbridge_webhook_replies_dropped_total",
        "Webhook replies dropped over webhooks[].max_replies_per_minute for their chat"
    );
    describe_counter!(
        "wxbridge_spool_dropped_events_total",
        "Entries dropped for a sink at spool.max_events_per_sink since the process started"
    );
    describe_counter!(
        "wxbridge_spool_fsyncs_total",
        "Syncs to storage by the spool: journal appends and durable database commits"
    );
    describe_gauge!(
        "wxbridge_spool_depth",
        "Spooled entries not yet delivered to the sink"
    );
    describe_gauge!(
        "wxbridge_spool_oldest_event_age_seconds",
        Unit::Seconds,
        "Age of the oldest entry waiting for the sink; 0 when none waits"
    );
    describe_gauge!(
        "wxbridge_sink_connected",
        "1 when the sink's link is up (webhooks and stdout: the last delivery did not fail)"
    );
    describe_counter!(
        "wxbridge_retries_total",
        "WeChat operations retried after a failure, by operation"
    );
    describe_counter!(
        "wxbridge_media_downloads_total",
        "Inbound media by kind and outcome: stored, found, too_large, expired, fetch_failed"
    );
    describe_counter!(
        "wxbridge_media_downloaded_bytes_total",
        Unit::Bytes,
        "Bytes of inbound media downloaded from WeChat"
    );
    describe_histogram!(
        "wxbridge_media_wait_seconds",
        Unit::Seconds,
        "How long events held for their media waited, from spooled to released"
    );
    describe_counter!(
        "wxbridge_send_results_total",
        "Send results by outcome: ok or the error code"
    );
    describe_counter!(
        "wxbridge_send_echo_missing_total",
        "Sends WeChat took whose echo did not come back in the sync within 2 minutes"
    );
    describe_histogram!(
        "wxbridge_send_throttle_wait_seconds",
        Unit::Seconds,
        "How long sends waited for the outbound throttle (only sends that waited)"
    );
    describe_gauge!(
        "wxbridge_send_queue_depth",
        "Send commands waiting in the outbound queue"
    );
    describe_gauge!(
        "wxbridge_session_state",
        "1 for the current WeChat session state, 0 for the others"
    );
    describe_gauge!(
        "wxbridge_last_sync_age_seconds",
        Unit::Seconds,
        "Seconds since the last successful sync with WeChat"
    );
    describe_counter!(
        "wxbridge_logins_total",
        "Logins by kind: stored session, push (confirm on the phone), QR scan"
    );
    describe_counter!(
        "wxbridge_http_accept_errors_total",
        "Connections the HTTP API failed to accept, such as for want of file descriptors"
    );
    describe_gauge!(
        "wxbridge_media_stored_bytes",
        Unit::Bytes,
        "Bytes in the media store"
    );
    describe_gauge!("wxbridge_media_stored_files", "Files in the media store");
    describe_counter!(
        "wxbridge_media_evicted_total",
        "Files evicted from the media store: age (unused for media.max_age), size (over media.max_bytes)"
    );
    describe_counter!(
        "wxbridge_media_evicted_bytes_total",
        Unit::Bytes,
        "Bytes held by the files evicted from the media store"
    );
    describe_counter!(
        "wxbridge_account_restarts_total",
        "Times an account's bridge was restarted after a panic in its tasks"
    );
    describe_counter!(
        "wxbridge_mqtt_refused_total",
        "Incoming MQTT publishes refused: queue_full (QoS 0 commands dropped), too_large"
    );
    describe_counter!(
        "wxbridge_media_skipped_total",
        "Files a bus could not carry before their event (the event went anyway): missing, \
         too_large, failed"
    );
}

/// Counters that should read 0 rather than be absent before anything happened, so rates and
/// alerts work from the first scrape. The per-account ones are preset by [`preset_account`].
fn preset() {
    counter!("wxbridge_http_accept_errors_total").absolute(0);
}

/// [`preset`] for the series of one account: call it inside that account's [`scope`].
pub fn preset_account() {
    for kind in ["stored", "push", "qr"] {
        counter!(
            "wxbridge_logins_total",
            labels(&[("kind", kind.to_owned())])
        )
        .absolute(0);
    }
    counter!(
        "wxbridge_send_results_total",
        labels(&[("result", "ok".to_owned())])
    )
    .absolute(0);
    counter!("wxbridge_send_echo_missing_total", labels(&[])).absolute(0);
    counter!("wxbridge_spool_fsyncs_total", labels(&[])).absolute(0);
    counter!("wxbridge_account_restarts_total", labels(&[])).absolute(0);
    for reason in ["age", "size"] {
        counter!(
            "wxbridge_media_evicted_total",
            labels(&[("reason", reason.to_owned())])
        )
        .absolute(0);
    }
    counter!("wxbridge_media_evicted_bytes_total", labels(&[])).absolute(0);
}

tokio::task_local! {
    /// The account whose work the current task does (see [`scope`]).
    static ACCOUNT: Arc<str>;
}

thread_local! {
    /// The account whose work the current blocking thread does (see [`within`]).
    static THREAD_ACCOUNT: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Runs `f` as `account`'s work: every per-account series it records carries the label
/// `account`. Task-locals do not follow `tokio::spawn`; a task spawned inside wraps its
/// future in [`inherit`], a blocking closure runs in [`within`].
pub fn scope<F: Future>(account: &str, f: F) -> impl Future<Output = F::Output> {
    ACCOUNT.scope(Arc::from(account), f)
}

/// `f` under the account of the calling task, if any (for `tokio::spawn` inside a [`scope`]).
pub fn inherit<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let account = current().unwrap_or_else(|| Arc::from(""));
    ACCOUNT.scope(account, f)
}

/// The account of the calling task or thread, if it runs inside a [`scope`] or [`within`].
pub fn current() -> Option<Arc<str>> {
    ACCOUNT
        .try_with(Arc::clone)
        .ok()
        .or_else(|| THREAD_ACCOUNT.with(|a| a.borrow().clone()))
        .filter(|a| !a.is_empty())
}

/// Runs the blocking `f` on this thread as `account`'s work (for `spawn_blocking` and the
/// threads a per-account part starts).
pub fn within<T>(account: Option<Arc<str>>, f: impl FnOnce() -> T) -> T {
    let before = THREAD_ACCOUNT.with(|a| a.replace(account));
    let out = f();
    THREAD_ACCOUNT.with(|a| *a.borrow_mut() = before);
    out
}

/// `pairs`, and `account` when the caller runs as an account's work.
fn labels(pairs: &[(&'static str, String)]) -> Vec<Label> {
    let mut labels: Vec<Label> = pairs
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect();
    if let Some(account) = current() {
        labels.push(Label::new("account", account.to_string()));
    }
    labels
}

/// The labels of a per-account series set outside the account's scope (the gauges `/metrics`
/// computes on demand).
pub fn account_labels(account: &str, pairs: &[(&'static str, String)]) -> Vec<Label> {
    let mut labels: Vec<Label> = pairs
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect();
    labels.push(Label::new("account", account.to_owned()));
    labels
}

/// An account's bridge panicked and is restarted.
pub fn account_restarted() {
    counter!("wxbridge_account_restarts_total", labels(&[])).increment(1);
}

/// The media store now holds `bytes` in `files` files.
pub fn media_store_size(bytes: u64, files: usize) {
    gauge!("wxbridge_media_stored_bytes", labels(&[])).set(bytes as f64);
    gauge!("wxbridge_media_stored_files", labels(&[])).set(files as f64);
}

/// A media file of `bytes` was evicted, for its age or to make room.
pub fn media_evicted(for_age: bool, bytes: u64) {
    let reason = if for_age { "age" } else { "size" };
    counter!(
        "wxbridge_media_evicted_total",
        labels(&[("reason", reason.to_owned())])
    )
    .increment(1);
    counter!("wxbridge_media_evicted_bytes_total", labels(&[])).increment(bytes);
}

/// Inbound messages of these types were spooled.
pub fn messages_received(types: &[MessageType]) {
    for &t in types {
        counter!(
            "wxbridge_messages_received_total",
            labels(&[("type", message_type(t).to_owned())])
        )
        .increment(1);
    }
}

/// The spool synced to storage once (a journal append or a durable commit).
pub fn spool_fsync() {
    counter!("wxbridge_spool_fsyncs_total", labels(&[])).increment(1);
}

/// A login succeeded: `stored`, `push` or `qr`.
pub fn login(kind: &'static str) {
    counter!(
        "wxbridge_logins_total",
        labels(&[("kind", kind.to_owned())])
    )
    .increment(1);
}

/// A WeChat operation failed and is retried: `sync`, `resume`, `login`, `send`.
pub fn retry(op: &'static str) {
    counter!("wxbridge_retries_total", labels(&[("op", op.to_owned())])).increment(1);
}

/// An inbound media file of `kind` ended with `outcome` (see the table).
pub fn media_download(kind: &'static str, outcome: &'static str) {
    counter!(
        "wxbridge_media_downloads_total",
        labels(&[("kind", kind.to_owned()), ("outcome", outcome.to_owned())])
    )
    .increment(1);
}

/// `n` bytes of inbound media arrived.
pub fn media_bytes(n: usize) {
    counter!("wxbridge_media_downloaded_bytes_total", labels(&[])).increment(n as u64);
}

/// A held event was released after waiting `waited`.
pub fn media_wait(waited: Duration) {
    histogram!("wxbridge_media_wait_seconds", labels(&[])).record(waited.as_secs_f64());
}

/// A send result was published.
pub fn send_result(result: &SendResult) {
    let outcome = match &result.error {
        _ if result.ok => "ok",
        Some(e) => e.code.as_str(),
        None => "error",
    };
    counter!(
        "wxbridge_send_results_total",
        labels(&[("result", outcome.to_owned())])
    )
    .increment(1);
}

/// The MQTT link refused an incoming publish: `queue_full` or `too_large`.
pub fn mqtt_refused(reason: &'static str) {
    counter!(
        "wxbridge_mqtt_refused_total",
        labels(&[("reason", reason.to_owned())])
    )
    .increment(1);
}

/// `sink` published an event without the file it refers to, for `reason` (`missing`,
/// `too_large`, `failed`).
pub fn media_skipped(sink: &'static str, reason: &'static str) {
    counter!(
        "wxbridge_media_skipped_total",
        labels(&[("sink", sink.to_owned()), ("reason", reason.to_owned())])
    )
    .increment(1);
}

/// WeChat took a message for a recipient of `class` (`person`, `group`, `filehelper`);
/// `today` messages went out since local midnight, against `per_day`.
pub fn limits_sent(class: &'static str, today: u32, per_day: u32) {
    counter!(
        "wxbridge_sends_total",
        labels(&[("class", class.to_owned())])
    )
    .increment(1);
    sends_today(today, per_day);
}

/// Messages sent since local midnight, and the day's limit (`send.limits.per_day`, halved
/// while tightened).
pub fn sends_today(today: u32, per_day: u32) {
    gauge!("wxbridge_sends_today", labels(&[])).set(f64::from(today));
    gauge!("wxbridge_sends_per_day_limit", labels(&[])).set(f64::from(per_day));
}

/// A command started waiting for the `send.limits` limit `limit`.
pub fn limit_wait(limit: &'static str) {
    counter!(
        "wxbridge_send_limit_waits_total",
        labels(&[("limit", limit.to_owned())])
    )
    .increment(1);
}

/// A command was answered `limit_exceeded` for `limit`.
pub fn limit_hit(limit: &'static str) {
    counter!(
        "wxbridge_send_limit_hits_total",
        labels(&[("limit", limit.to_owned())])
    )
    .increment(1);
}

/// WeChat took a send whose echo did not come back in the sync in time.
pub fn echo_missing() {
    counter!("wxbridge_send_echo_missing_total", labels(&[])).increment(1);
}

/// A send waited `waited` for the throttle.
pub fn throttled(waited: Duration) {
    histogram!("wxbridge_send_throttle_wait_seconds", labels(&[])).record(waited.as_secs_f64());
}

/// `sink` confirmed `n` entries.
pub fn delivered(sink: &str, n: usize) {
    counter!(
        "wxbridge_events_delivered_total",
        labels(&[("sink", sink.to_owned())])
    )
    .increment(n as u64);
}

/// A delivery attempt to `sink` failed.
pub fn delivery_failed(sink: &str) {
    counter!(
        "wxbridge_delivery_failures_total",
        labels(&[("sink", sink.to_owned())])
    )
    .increment(1);
}

/// A reply from webhook `sink` was dropped: its chat had used up its replies for the minute.
pub fn webhook_reply_dropped(sink: &str) {
    counter!(
        "wxbridge_webhook_replies_dropped_total",
        labels(&[("sink", sink.to_owned())])
    )
    .increment(1);
}

/// The `type` label of a message event, as the event's JSON spells it.
pub fn message_type(t: MessageType) -> &'static str {
    match t {
        MessageType::Text => "text",
        MessageType::Location => "location",
        MessageType::Image => "image",
        MessageType::Voice => "voice",
        MessageType::Video => "video",
        MessageType::Emoticon => "emoticon",
        MessageType::FriendRequest => "friend_request",
        MessageType::Card => "card",
        MessageType::Link => "link",
        MessageType::File => "file",
        MessageType::App => "app",
        MessageType::System => "system",
        MessageType::Revoke => "revoke",
        MessageType::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_labels_match_the_event_json() {
        for t in [
            MessageType::Text,
            MessageType::FriendRequest,
            MessageType::Revoke,
            MessageType::Other,
        ] {
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json.as_str(), Some(message_type(t)));
        }
    }
}
