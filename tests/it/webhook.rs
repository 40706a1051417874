//! The webhook sink against a real HTTP receiver on 127.0.0.1: headers and Standard Webhooks
//! signatures, the kinds filter, failures that stop a batch, timeouts, and replies.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;
use wxbridge::config::{ConfigError, EventKind, Secret, WebhookConfig};
use wxbridge::event::{
    Chat, LoginEvent, LoginKind, LoginUser, MessageEvent, MessageKind, MessageType, Origin, Sender,
};
use wxbridge::sinks::webhook::{self, WebhookError, WebhookSink};
use wxbridge::sinks::{run_delivery, Accepted, Intake, Origin as CommandOrigin, Sink};
use wxbridge::spool::{Entry, Kind, NewEntry, RedbSpool, Store};

use crate::schema::{assert_valid, assert_valid_command};
use crate::support::{Bridge, World, WAIT};

const ACCOUNT: &str = "home";

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Request {
    headers: HeaderMap,
    body: Bytes,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: &'static str,
    delay: Duration,
}

impl Answer {
    fn status(status: u16) -> Answer {
        Answer {
            status,
            body: "",
            delay: Duration::ZERO,
        }
    }

    fn body(body: &'static str) -> Answer {
        Answer {
            body,
            ..Answer::status(200)
        }
    }
}

/// A webhook receiver that records every request and answers from a script (200 when the
/// script is used up).
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// While set, every request is answered 503 and recorded in `refused` only: the receiver
    /// is down.
    down: Arc<AtomicBool>,
    refused: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    async fn start() -> (Receiver, Url) {
        let receiver = Receiver::default();
        let app = Router::new()
            .route("/hook", post(answer))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().unwrap().extend(answers);
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The `id` of every event received, in order.
    fn ids(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

async fn answer(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    if receiver.down.load(Ordering::SeqCst) {
        receiver
            .refused
            .lock()
            .unwrap()
            .push(Request { headers, body });
        return (StatusCode::SERVICE_UNAVAILABLE, "");
    }
    receiver
        .requests
        .lock()
        .unwrap()
        .push(Request { headers, body });
    let answer = receiver
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::status(200));
    tokio::time::sleep(answer.delay).await;
    (StatusCode::from_u16(answer.status).unwrap(), answer.body)
}

/// Commands the sink handed to the bridge, each accepted at once.
#[derive(Clone, Default)]
struct Commands(Arc<Mutex<Vec<(Value, CommandOrigin)>>>);

impl Commands {
    fn intake() -> (Intake, Commands) {
        let (intake, mut rx) = Intake::new(8);
        let commands = Commands::default();
        let seen = commands.clone();
        tokio::spawn(async move {
            while let Some(mut cmd) = rx.recv().await {
                let payload = serde_json::from_slice(&cmd.payload).unwrap();
                seen.0.lock().unwrap().push((payload, cmd.origin.clone()));
                if let Some(done) = cmd.accepted.take() {
                    let _ = done.send(Accepted::Queued(1));
                }
            }
        });
        (intake, commands)
    }

    fn taken(&self) -> Vec<(Value, CommandOrigin)> {
        self.0.lock().unwrap().clone()
    }
}

fn config(url: &Url, secret: Option<&str>, events: &[EventKind]) -> WebhookConfig {
    let mut c = WebhookConfig::new(url.clone());
    c.secret = secret.map(Secret::new);
    c.events = events.to_vec();
    c.timeout = Duration::from_secs(5);
    c
}

fn sink(config: &WebhookConfig) -> (WebhookSink, Commands) {
    let (intake, commands) = Commands::intake();
    let prepared = webhook::prepare(0, config, ACCOUNT).unwrap();
    (prepared.start(intake).sink, commands)
}

/// A spooled message event as the bridge writes it; checked against the event schema.
fn message(seq: u64, id: &str, origin: Origin, text: &str) -> Entry {
    let event = MessageEvent {
        kind: MessageKind,
        id: id.into(),
        account: ACCOUNT.into(),
        time: time::OffsetDateTime::now_utc(),
        message_type: MessageType::Text,
        msg_type: 1,
        origin,
        request_id: (origin == Origin::Bridge).then(|| Some("r-17".into())),
        chat: Chat {
            id: "@@9f3".into(),
            name: "Family".into(),
            group: true,
            key: None,
        },
        from: Sender {
            id: "@a81".into(),
            name: "Mama".into(),
            remark: Some("Mom".into()),
            is_self: origin != Origin::Contact,
            key: None,
        },
        text: Some(text.into()),
        mentioned: false,
        location: None,
        media: None,
        friend_request: None,
        card: None,
        link: None,
        file: None,
        app: None,
        revoke: None,
        raw: serde_json::value::RawValue::from_string(format!(
            r#"{{"MsgId":"{id}","MsgType":1,"Content":"{text}"}}"#
        ))
        .unwrap(),
    };
    entry(seq, Kind::Message, id, serde_json::to_vec(&event).unwrap())
}

fn login(seq: u64, id: &str) -> Entry {
    let event = LoginEvent {
        kind: LoginKind,
        account: ACCOUNT.into(),
        time: time::OffsetDateTime::now_utc(),
        user: LoginUser {
            id: "@self".into(),
            name: "Sam".into(),
            uin: 42,
        },
    };
    entry(seq, Kind::Login, id, serde_json::to_vec(&event).unwrap())
}

fn entry(seq: u64, kind: Kind, id: &str, payload: Vec<u8>) -> Entry {
    assert_valid(&serde_json::from_slice(&payload).unwrap());
    Entry {
        seq,
        kind,
        id: id.into(),
        payload,
        reply_to: None,
        appended_ms: 0,
    }
}

fn messages(ids: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    ids.map(|i| message(i, &format!("10{i}"), Origin::Contact, &format!("m{i}")))
        .collect()
}

#[tokio::test]
async fn signed_post_verifies_with_standard_webhooks_for_a_whsec_secret() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (receiver, url) = Receiver::start().await;
    let (mut sink, _) = sink(&config(&url, Some(secret), &[EventKind::Message]));
    assert_eq!(sink.name(), "webhook:0");
    let batch = vec![message(1, "4839201934821", Origin::Contact, "dinner at 7?")];
    sink.deliver(&batch).await.unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.body, batch[0].payload, "the body is the spooled payload");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-wxbridge-event"), Some("message"));
    assert_eq!(r.header("webhook-id"), Some("home:4839201934821"));
    let ts: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - ts).abs() <= 5);
    assert!(r.header("webhook-signature").unwrap().starts_with("v1,"));
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&r.body, &r.headers)
        .expect("the signature verifies");
}

#[tokio::test]
async fn signed_post_verifies_with_standard_webhooks_for_a_raw_secret() {
    let secret = "correct horse battery staple";
    let (receiver, url) = Receiver::start().await;
    let (mut sink, _) = sink(&config(&url, Some(secret), &[EventKind::Message]));
    sink.deliver(&[message(1, "7", Origin::Phone, "hi")])
        .await
        .unwrap();

    let r = &receiver.requests()[0];
    standardwebhooks::Webhook::from_bytes(secret.as_bytes().to_vec())
        .unwrap()
        .verify(&r.body, &r.headers)
        .expect("the signature verifies");
    assert!(standardwebhooks::Webhook::from_bytes(b"wrong".to_vec())
        .unwrap()
        .verify(&r.body, &r.headers)
        .is_err());
}

#[tokio::test]
async fn without_a_secret_requests_are_unsigned() {
    let (receiver, url) = Receiver::start().await;
    let (mut sink, _) = sink(&config(&url, None, &[EventKind::Message]));
    sink.deliver(&messages(1..=1)).await.unwrap();
    let r = &receiver.requests()[0];
    assert_eq!(r.header("x-wxbridge-event"), Some("message"));
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert_eq!(r.header(name), None, "{name}");
    }
}

#[tokio::test]
async fn only_the_configured_kinds_are_accepted_and_posted() {
    let (receiver, url) = Receiver::start().await;
    let (mut messages_only, _) = sink(&config(&url, None, &[EventKind::Message]));
    assert!(messages_only.accepts(Kind::Message));
    for kind in [
        Kind::Login,
        Kind::Logout,
        Kind::Contacts,
        Kind::Error,
        Kind::Result,
    ] {
        assert!(!messages_only.accepts(kind), "{kind:?}");
    }
    let (events_only, _) = sink(&config(
        &url,
        None,
        &[
            EventKind::Login,
            EventKind::Logout,
            EventKind::Contacts,
            EventKind::Error,
        ],
    ));
    assert!(!events_only.accepts(Kind::Message));
    assert!(!events_only.accepts(Kind::Result));
    assert!(events_only.accepts(Kind::Contacts));

    // A kind the sink does not take is skipped and counts as delivered.
    let batch = vec![
        message(1, "101", Origin::Contact, "a"),
        login(2, "login-1"),
        message(3, "103", Origin::Contact, "b"),
    ];
    messages_only.deliver(&batch).await.unwrap();
    assert_eq!(receiver.ids(), ["101", "103"]);

    let (mut logins, _) = sink(&config(&url, Some("s3cret"), &[EventKind::Login]));
    logins.deliver(&[login(4, "login-2")]).await.unwrap();
    let last = receiver.requests().pop().unwrap();
    assert_eq!(last.header("x-wxbridge-event"), Some("login"));
    assert_eq!(last.header("webhook-id"), Some("home:login-2"));
}

#[tokio::test]
async fn a_500_stops_the_batch_and_a_later_delivery_sends_the_rest_in_order() {
    let (receiver, url) = Receiver::start().await;
    let (mut sink, _) = sink(&config(&url, None, &[EventKind::Message]));
    let batch = messages(1..=5);
    receiver.script([
        Answer::status(200),
        Answer::status(204),
        Answer::status(500),
    ]);
    let err = sink.deliver(&batch).await.unwrap_err();
    assert_eq!(err.delivered, 2);
    assert!(err.cause.contains("500"), "{}", err.cause);
    assert_eq!(
        receiver.ids(),
        ["101", "102", "103"],
        "nothing after the failure"
    );

    sink.deliver(&batch[err.delivered..]).await.unwrap();
    assert_eq!(receiver.ids(), ["101", "102", "103", "103", "104", "105"]);
}

#[tokio::test]
async fn a_retried_event_keeps_its_webhook_id_and_verifies_again() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (receiver, url) = Receiver::start().await;
    let (mut sink, _) = sink(&config(&url, Some(secret), &[EventKind::Message]));
    receiver.script([Answer::status(503)]);
    let batch = messages(1..=1);
    assert_eq!(sink.deliver(&batch).await.unwrap_err().delivered, 0);
    sink.deliver(&batch).await.unwrap();

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    for r in &requests {
        assert_eq!(r.header("webhook-id"), Some("home:101"));
        assert_eq!(r.body, batch[0].payload);
        verifier.verify(&r.body, &r.headers).unwrap();
    }
}

#[tokio::test]
async fn redirects_and_client_errors_are_failures_naming_the_status() {
    let (receiver, url) = Receiver::start().await;
    let (mut sink, _) = sink(&config(&url, None, &[EventKind::Message]));
    receiver.script([Answer::status(307), Answer::status(404)]);
    let err = sink.deliver(&messages(1..=1)).await.unwrap_err();
    assert_eq!(err.delivered, 0);
    assert!(err.cause.contains("307"), "{}", err.cause);
    let err = sink.deliver(&messages(1..=1)).await.unwrap_err();
    assert!(err.cause.contains("404"), "{}", err.cause);
    assert_eq!(
        receiver.requests().len(),
        2,
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_fails_the_delivery() {
    let (receiver, url) = Receiver::start().await;
    let mut c = config(&url, None, &[EventKind::Message]);
    c.timeout = Duration::from_millis(300);
    let (mut sink, _) = sink(&c);
    receiver.script([Answer {
        delay: Duration::from_secs(5),
        ..Answer::status(200)
    }]);
    let started = Instant::now();
    let err = sink.deliver(&messages(1..=2)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(err.delivered, 0);
    assert!(err.cause.contains("300ms"), "{}", err.cause);
    assert_eq!(receiver.ids(), ["101"]);
}

#[tokio::test]
async fn an_unreachable_webhook_fails_the_delivery() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let (mut sink, _) = sink(&config(&url, None, &[EventKind::Message]));
    let err = sink.deliver(&messages(1..=1)).await.unwrap_err();
    assert_eq!(err.delivered, 0);
    assert!(err.cause.starts_with("request failed"), "{}", err.cause);
}

#[tokio::test]
async fn a_reply_answer_sends_the_text_to_the_event_chat() {
    let (receiver, url) = Receiver::start().await;
    let (mut sink, commands) = sink(&config(&url, Some("s3cret"), &[EventKind::Message]));
    receiver.script([Answer::body(r#"{"reply":"on my way"}"#)]);
    sink.deliver(&[message(
        1,
        "4839201934821",
        Origin::Contact,
        "where are you?",
    )])
    .await
    .unwrap();

    let taken = commands.taken();
    assert_eq!(taken.len(), 1);
    let (command, origin) = &taken[0];
    assert_eq!(*origin, CommandOrigin::Webhook);
    assert_eq!(
        *command,
        json!({"to_id": "@@9f3", "text": "on my way", "request_id": "reply:home:4839201934821"})
    );
    assert_valid_command(command);
    assert!(wxbridge::event::parse_command(command.to_string().as_bytes(), 65536).is_ok());
}

#[tokio::test]
async fn replies_to_the_bridges_own_messages_are_ignored() {
    let (receiver, url) = Receiver::start().await;
    let (mut sink, commands) = sink(&config(&url, None, &[EventKind::Message]));
    receiver.script([
        Answer::body(r#"{"reply":"echo"}"#),
        Answer::body("OK"),
        Answer::body(""),
        Answer::body(r#"{"reply":null}"#),
    ]);
    let batch = vec![
        message(1, "201", Origin::Bridge, "sent by a command"),
        message(2, "202", Origin::Contact, "non-JSON answer"),
        message(3, "203", Origin::Contact, "empty answer"),
        message(4, "204", Origin::Contact, "no reply string"),
    ];
    sink.deliver(&batch).await.unwrap();
    assert_eq!(receiver.ids(), ["201", "202", "203", "204"]);
    assert!(commands.taken().is_empty(), "{:?}", commands.taken());
}

#[tokio::test]
async fn replies_past_the_per_chat_budget_are_dropped() {
    let (receiver, url) = Receiver::start().await;
    receiver.script(std::iter::repeat_n(Answer::body(r#"{"reply":"again"}"#), 6));
    let mut c = config(&url, None, &[EventKind::Message]);
    c.max_replies_per_minute = 2;
    let (mut sink, commands) = sink(&c);
    let mut other_chat = message(5, "105", Origin::Contact, "elsewhere");
    let mut event: Value = serde_json::from_slice(&other_chat.payload).unwrap();
    event["chat"]["id"] = json!("@b52");
    other_chat.payload = serde_json::to_vec(&event).unwrap();
    let mut batch = messages(1..=4);
    batch.push(other_chat);
    sink.deliver(&batch).await.unwrap();

    assert_eq!(
        receiver.requests().len(),
        5,
        "every event is still delivered"
    );
    let taken: Vec<(String, String)> = commands
        .taken()
        .iter()
        .map(|(c, _)| {
            (
                c["to_id"].as_str().unwrap().to_owned(),
                c["request_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        taken,
        [
            ("@@9f3".to_owned(), "reply:home:101".to_owned()),
            ("@@9f3".to_owned(), "reply:home:102".to_owned()),
            ("@b52".to_owned(), "reply:home:105".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_chat_with_a_key_is_answered_by_its_key_and_keeps_its_budget_under_new_ids() {
    let (receiver, url) = Receiver::start().await;
    receiver.script(std::iter::repeat_n(Answer::body(r#"{"reply":"again"}"#), 3));
    let mut c = config(&url, None, &[EventKind::Message]);
    c.max_replies_per_minute = 2;
    let (mut sink, commands) = sink(&c);
    // The same chat under the ids of three logins.
    let batch: Vec<Entry> = (1..=3)
        .map(|i| {
            let mut e = message(i, &format!("20{i}"), Origin::Contact, "hi");
            let mut event: Value = serde_json::from_slice(&e.payload).unwrap();
            event["chat"]["id"] = json!(format!("@@login{i}"));
            event["chat"]["key"] = json!("c_q4mz7b2kd6wa");
            assert_valid(&event);
            e.payload = serde_json::to_vec(&event).unwrap();
            e
        })
        .collect();
    sink.deliver(&batch).await.unwrap();

    let taken: Vec<Value> = commands.taken().into_iter().map(|(c, _)| c).collect();
    assert_eq!(
        taken,
        [
            json!({"to_key": "c_q4mz7b2kd6wa", "text": "again", "request_id": "reply:home:201"}),
            json!({"to_key": "c_q4mz7b2kd6wa", "text": "again", "request_id": "reply:home:202"}),
        ],
        "the third is past the chat's budget, whatever its id"
    );
    assert_valid_command(&taken[0]);
}

#[tokio::test]
async fn a_whsec_secret_that_is_not_base64_is_a_config_error() {
    let url = Url::parse("http://127.0.0.1:9/hook").unwrap();
    let c = config(&url, Some("whsec_not*base64"), &[EventKind::Message]);
    let Err(ConfigError::Sink(err)) = webhook::prepare(3, &c, ACCOUNT) else {
        panic!("the secret is refused as the webhook's config");
    };
    assert!(matches!(
        err.downcast_ref(),
        Some(WebhookError::Secret { index: 3, .. })
    ));
    let message = err.to_string();
    assert!(message.starts_with("webhooks[3].secret"), "{message}");
    assert!(message.contains("base64"), "{message}");
    assert!(!message.contains("not*base64"), "{message}");
}

#[tokio::test]
async fn webhook_500s_are_retried_until_every_event_is_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Store::spawn(
        RedbSpool::open(&dir.path().join("spool.redb"), 1000).unwrap(),
        1000,
    )
    .unwrap();
    let (receiver, url) = Receiver::start().await;
    receiver.script((0..10).map(|_| Answer::status(500)));
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (sink, _) = sink(&config(&url, Some(secret), &[EventKind::Message]));
    // A sink seen for the first time starts at the end of the spool: register it first.
    spool.register_sink(sink.name()).await.unwrap();

    let append = |range: std::ops::RangeInclusive<u64>| {
        let entries = messages(range)
            .into_iter()
            .map(|e| NewEntry {
                kind: e.kind,
                id: e.id,
                payload: e.payload,
                reply_to: None,
            })
            .collect();
        spool.append(entries)
    };
    append(1..=3).await.unwrap();
    // Other kinds in the spool are skipped by this sink and do not block it.
    let skipped = login(0, "login-1");
    spool
        .append(vec![NewEntry {
            kind: skipped.kind,
            id: skipped.id,
            payload: skipped.payload,
            reply_to: None,
        }])
        .await
        .unwrap();
    let wake = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let delivery = tokio::spawn(run_delivery(
        sink,
        spool.clone(),
        wake.clone(),
        || std::iter::repeat(Duration::from_millis(10)),
        shutdown.clone(),
    ));
    wait_for(|| receiver.requests().len() >= 5).await;
    append(4..=5).await.unwrap();
    wake.notify_one();
    wait_for(|| receiver.requests().len() >= 15).await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while spool.backlog("webhook:0").await.unwrap().depth > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every event delivered");
    shutdown.cancel();
    delivery.await.unwrap();

    let ids = receiver.ids();
    assert_eq!(ids.len(), 15, "{ids:?}");
    assert!(ids[..10].iter().all(|id| id == "101"), "{ids:?}");
    assert_eq!(ids[10..], ["101", "102", "103", "104", "105"]);
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    for r in receiver.requests() {
        verifier.verify(&r.body, &r.headers).unwrap();
        assert_eq!(
            r.header("webhook-id").unwrap(),
            format!("home:{}", r.json()["id"].as_str().unwrap())
        );
    }
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_reply_to_an_event_delivered_after_a_relogin_reaches_its_contact() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let (receiver, url) = Receiver::start().await;
    receiver.down.store(true, Ordering::SeqCst);
    let config = world.config(&format!(
        "webhooks:\n  - url: {url}\n    events: [message]\n"
    ));
    let bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    assert_eq!(world.fake.wait_logins(1, WAIT).await, 1);
    let first_name = world.fake.user_name_of("Alice");
    let queued = world
        .fake
        .queue(wxbridge_fake::Msg::text(&first_name, "are you there?"));
    // Spooled, and tried on the receiver while it is down.
    let event = tokio::time::timeout(WAIT, async {
        loop {
            let refused = receiver.refused.lock().unwrap().clone();
            if let Some(r) = refused
                .iter()
                .find(|r| r.json()["id"] == queued.msg_id.as_str())
            {
                return r.json();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the webhook is tried with the message");
    assert!(event["chat"]["key"].is_string(), "{event}");

    // A new QR login hands out new UserNames; the event is still in the webhook's spool.
    assert_eq!(bridge.stop().await, 0);
    std::fs::remove_file(world.state_dir().join("session.json")).unwrap();
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    assert_eq!(world.fake.wait_logins(2, WAIT).await, 2);
    let alice = world.fake.user_name_of("Alice");
    assert_ne!(alice, first_name);

    receiver.script([Answer::body(r#"{"reply":"yes, here"}"#)]);
    receiver.down.store(false, Ordering::SeqCst);
    let sent = world.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent.len(), 1, "the reply was sent");
    assert_eq!(sent[0].to, alice, "to Alice under her new UserName");
    assert_eq!(sent[0].content, "yes, here");
    assert_eq!(
        receiver.ids()[0],
        queued.msg_id,
        "the spooled event came first"
    );
}
