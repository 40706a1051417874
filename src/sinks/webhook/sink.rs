//! One webhook: its HTTP client, the POST of one spooled entry, and the reply path.
use std::time::Duration;

use tokio::time::Instant;

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use serde::Deserialize;
use url::Url;

use super::budget::ReplyBudget;
use super::{sign, SigningKey, WebhookError, REPLY_PREFIX};
use crate::config::{ConfigError, EventKind, WebhookConfig};
use crate::sinks::{DeliveryError, Intake, Link, Origin, Sink, Started};
use crate::spool::{Entry, Kind};

/// The longest a connection attempt may take (shorter when the webhook's `timeout` is).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a response body that is read for a reply; a larger body is no reply. Far above
/// `send.max_bytes`, so any reply the bridge could send fits.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The header that names the event kind, so receivers can route without parsing the body.
const EVENT_HEADER: &str = "x-wxbridge-event";
/// Names the account an entry is from, on every POST: with several accounts one webhook gets
/// every account's events, and a receipt's body has no `account` of its own.
const ACCOUNT_HEADER: &str = "x-wxbridge-account";

/// A configured webhook as a [`Sink`] named `webhook:<index>`.
#[derive(Debug)]
pub struct WebhookSink {
    hook: Prepared,
    intake: Intake,
    replies: ReplyBudget,
}

/// Checks `webhooks[index]` and builds what it needs: the signing key from its secret, and its
/// HTTP client (no cookies, no redirects followed, the webhook's `timeout` per request).
/// `account` makes up `webhook-id`. Ready to [`Prepared::start`].
pub fn prepare(
    index: usize,
    config: &WebhookConfig,
    account: &str,
) -> Result<Prepared, ConfigError> {
    let key = config
        .secret
        .as_ref()
        .map(|s| SigningKey::from_secret(s.expose()))
        .transpose()
        .map_err(|problem| WebhookError::Secret { index, problem })?;
    // A redirect is answered as a failure naming the status: following it would POST the
    // event, and its signature, somewhere the user did not configure.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.timeout.min(CONNECT_TIMEOUT))
        .timeout(config.timeout)
        .user_agent(concat!("wxbridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WebhookError::Client {
            index,
            cause: error_chain(&e.without_url()),
        })?;
    Ok(Prepared {
        name: format!("webhook:{index}"),
        url: config.url.clone(),
        timeout: config.timeout,
        kinds: config.events.iter().map(|&k| spool_kind(k)).collect(),
        key,
        account: account.to_owned(),
        client,
        max_replies_per_minute: config.max_replies_per_minute,
    })
}

/// A checked webhook: [`prepare`]'s answer.
#[derive(Debug)]
pub struct Prepared {
    name: String,
    url: Url,
    timeout: Duration,
    kinds: Vec<Kind>,
    key: Option<SigningKey>,
    account: String,
    client: reqwest::Client,
    max_replies_per_minute: u32,
}

impl Prepared {
    /// The sink; replies go to `intake`. A webhook has no standing connection and no task of
    /// its own.
    pub fn start(self, intake: Intake) -> Started<WebhookSink> {
        let sink = WebhookSink {
            replies: ReplyBudget::new(self.max_replies_per_minute),
            hook: self,
            intake,
        };
        Started {
            sink,
            health: Link::connectionless(),
        }
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.hook.name
    }

    fn accepts(&self, kind: Kind) -> bool {
        self.hook.kinds.contains(&kind)
    }

    async fn deliver(&mut self, batch: &[Entry]) -> Result<(), DeliveryError> {
        for (delivered, entry) in batch.iter().enumerate() {
            if !self.accepts(entry.kind) {
                continue;
            }
            self.post(entry)
                .await
                .map_err(|cause| DeliveryError { delivered, cause })?;
        }
        Ok(())
    }
}

impl WebhookSink {
    /// POSTs one entry; `Ok` once it is answered 2xx and any reply is queued.
    async fn post(&mut self, entry: &Entry) -> Result<(), String> {
        let webhook_id = format!("{}:{}", self.hook.account, entry.id);
        let mut request = self
            .hook
            .client
            .post(self.hook.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(EVENT_HEADER, entry.kind.as_str())
            .header(ACCOUNT_HEADER, &self.hook.account)
            .body(entry.payload.clone());
        if let Some(key) = &self.hook.key {
            // A fresh timestamp per attempt: receivers reject old ones (5 min tolerance).
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
            request = request
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    sign(key, &webhook_id, timestamp, &entry.payload),
                );
        }
        let mut response = request.send().await.map_err(|e| self.failure(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the webhook answered {status}"));
        }
        tracing::debug!(sink = %self.hook.name, webhook_id = %webhook_id, status = status.as_u16(), "delivered");
        let Some(chat) = replyable_chat(entry) else {
            return Ok(());
        };
        let answer = match read_capped(&mut response, MAX_ANSWER_BYTES).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                tracing::warn!(sink = %self.hook.name, webhook_id = %webhook_id, limit = MAX_ANSWER_BYTES, "answer body too large to hold a reply; ignored");
                return Ok(());
            }
            // The receiver took the event (2xx); sending it again would only repeat it.
            Err(e) => {
                tracing::warn!(sink = %self.hook.name, webhook_id = %webhook_id, cause = %self.failure(e), "cannot read the answer body; no reply sent");
                return Ok(());
            }
        };
        let Some(text) = reply_text(&answer) else {
            return Ok(());
        };
        if !self.replies.take(chat.value(), Instant::now()) {
            tracing::warn!(
                sink = %self.hook.name,
                webhook_id = %webhook_id,
                chat = %chat.value(),
                limit = self.replies.per_minute(),
                "reply dropped: the chat has had max_replies_per_minute replies in the last minute"
            );
            crate::metrics::webhook_reply_dropped(&self.hook.name);
            return Ok(());
        }
        let mut command = serde_json::json!({
            "text": text,
            "request_id": format!("{REPLY_PREFIX}{webhook_id}"),
        });
        command[chat.field()] = serde_json::Value::String(chat.value().to_owned());
        let payload = serde_json::to_vec(&command).unwrap_or_default();
        tracing::debug!(sink = %self.hook.name, webhook_id = %webhook_id, "queueing the webhook's reply");
        if self.intake.submit(payload, Origin::Webhook).await {
            Ok(())
        } else {
            // Failing makes the event go out again after a restart; the reply's request_id
            // keeps it from being sent twice.
            Err("the bridge is shutting down and did not take the webhook's reply".into())
        }
    }

    /// A request error as a delivery cause, without the URL (it may carry a token).
    fn failure(&self, e: reqwest::Error) -> String {
        if e.is_timeout() {
            format!(
                "no answer within {} (the webhook's timeout)",
                humantime::format_duration(self.hook.timeout)
            )
        } else {
            format!("request failed: {}", error_chain(&e.without_url()))
        }
    }
}

/// An error and its sources, joined: reqwest's own message alone ("error sending request")
/// does not say what went wrong.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn spool_kind(kind: EventKind) -> Kind {
    match kind {
        EventKind::Message => Kind::Message,
        EventKind::Login => Kind::Login,
        EventKind::Logout => Kind::Logout,
        EventKind::Contacts => Kind::Contacts,
        EventKind::Error => Kind::Error,
        EventKind::Receipt => Kind::Receipt,
    }
}

/// Where a reply goes: the chat's contact key when the event has one, since an event can be
/// delivered after a relogin (spooled while the webhook was down) and the `@…` id it names
/// is then gone; the id otherwise.
#[derive(Debug, PartialEq, Eq)]
enum ReplyTo {
    Key(String),
    Id(String),
}

impl ReplyTo {
    /// The command field that names the recipient.
    fn field(&self) -> &'static str {
        match self {
            ReplyTo::Key(_) => "to_key",
            ReplyTo::Id(_) => "to_id",
        }
    }

    /// The key or id; also what the reply budget counts by, so a chat keeps its budget
    /// across a relogin when it has a key.
    fn value(&self) -> &str {
        match self {
            ReplyTo::Key(v) | ReplyTo::Id(v) => v,
        }
    }
}

/// The chat a reply to `entry` goes to: only message events that this bridge did not send
/// itself (DESIGN.md: webhook replies never answer `origin: bridge`).
fn replyable_chat(entry: &Entry) -> Option<ReplyTo> {
    #[derive(Deserialize)]
    struct Message {
        origin: String,
        chat: Chat,
    }
    #[derive(Deserialize)]
    struct Chat {
        id: String,
        #[serde(default)]
        key: Option<String>,
    }
    if entry.kind != Kind::Message {
        return None;
    }
    let message: Message = serde_json::from_slice(&entry.payload).ok()?;
    if message.origin == "bridge" {
        return None;
    }
    Some(match message.chat.key {
        Some(key) => ReplyTo::Key(key),
        None => ReplyTo::Id(message.chat.id),
    })
}

/// The `reply` of an answer body `{"reply":"text"}`; none for an empty, non-JSON or other body.
fn reply_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.get("reply")? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The response body, or `None` when it is longer than `cap` (the rest is not read).
async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: Kind, payload: &str) -> Entry {
        Entry {
            seq: 1,
            kind,
            id: "42".into(),
            payload: payload.as_bytes().to_vec(),
            reply_to: None,
            appended_ms: 0,
        }
    }

    #[test]
    fn only_messages_not_sent_by_the_bridge_are_answered() {
        let contact = r#"{"kind":"message","origin":"contact","chat":{"id":"@@9f3"}}"#;
        let phone = r#"{"kind":"message","origin":"phone","chat":{"id":"@a81","key":null}}"#;
        let keyed = r#"{"kind":"message","origin":"contact","chat":{"id":"@b5","key":"c_k1"}}"#;
        let bridge = r#"{"kind":"message","origin":"bridge","chat":{"id":"@a81"}}"#;
        assert_eq!(
            replyable_chat(&entry(Kind::Message, contact)),
            Some(ReplyTo::Id("@@9f3".into()))
        );
        assert_eq!(
            replyable_chat(&entry(Kind::Message, phone)),
            Some(ReplyTo::Id("@a81".into()))
        );
        assert_eq!(
            replyable_chat(&entry(Kind::Message, keyed)),
            Some(ReplyTo::Key("c_k1".into())),
            "a key outlives the login, the id does not"
        );
        assert_eq!(replyable_chat(&entry(Kind::Message, bridge)), None);
        assert_eq!(replyable_chat(&entry(Kind::Login, contact)), None);
        assert_eq!(replyable_chat(&entry(Kind::Message, "not json")), None);
    }

    #[test]
    fn reply_is_a_non_empty_string_field() {
        assert_eq!(reply_text(br#"{"reply":"ok!"}"#).as_deref(), Some("ok!"));
        assert_eq!(reply_text(br#"{"reply":""}"#), None);
        assert_eq!(reply_text(br#"{"reply":5}"#), None);
        assert_eq!(reply_text(br#"{"status":"ok"}"#), None);
        assert_eq!(reply_text(br#"["reply"]"#), None);
        assert_eq!(reply_text(b""), None);
        assert_eq!(reply_text(b"OK"), None);
    }

    #[test]
    fn every_config_kind_maps_to_its_spool_kind() {
        for kind in [
            EventKind::Message,
            EventKind::Login,
            EventKind::Logout,
            EventKind::Contacts,
            EventKind::Error,
            EventKind::Receipt,
        ] {
            assert_eq!(spool_kind(kind).as_str(), kind.as_str());
        }
    }
}
