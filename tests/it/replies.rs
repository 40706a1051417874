//! Webhook replies through the real binary: a receiver that answers every message event,
//! while the fake echoes every send back in the sync (with the send's MsgID, or with a MsgId of
//! its own). The bridge must answer each contact's message once and never its own messages,
//! and the per-chat reply budget must hold when a contact floods.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::time::Instant;
use wxbridge_fake::Msg;

use crate::support::{Bridge, World, WAIT};

/// A receiver that answers every message event with `{"reply":"re: <text>"}`, the naive bot
/// that makes a loop with any chat that answers too.
#[derive(Clone, Default)]
struct Bot {
    events: Arc<Mutex<Vec<Value>>>,
}

impl Bot {
    async fn start() -> (Bot, String) {
        let bot = Bot::default();
        let app = Router::new()
            .route("/hook", post(answer))
            .with_state(bot.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (bot, url)
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Message events received with this text.
    fn messages(&self, text: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == "message" && e["text"] == text)
            .collect()
    }
}

async fn answer(State(bot): State<Bot>, body: Bytes) -> (StatusCode, String) {
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    bot.events.lock().unwrap().push(event.clone());
    let reply = match (event["kind"].as_str(), event["text"].as_str()) {
        (Some("message"), Some(text)) => json!({ "reply": format!("re: {text}") }).to_string(),
        _ => String::new(),
    };
    (StatusCode::OK, reply)
}

/// Starts `run` with a webhook to `url` for messages and logins, and waits for the login.
async fn start(world: &World, bot: &Bot, url: &str, extra: &str) -> Bridge {
    let config = world.config(&format!(
        "webhooks:\n  - url: {url}\n    events: [message, login]\n{extra}"
    ));
    let bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    until(&bridge, "the login event", || {
        bot.events().iter().any(|e| e["kind"] == "login")
    })
    .await;
    bridge
}

/// Polls `done` until it holds; the wait is only a failure bound.
async fn until(bridge: &Bridge, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stderr:\n{}",
            bridge.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three messages from a contact, the echoes of the three replies, then a fourth message:
/// when its reply has gone out, any reply to an echo (delivered before it, in spool order)
/// would have gone out too.
async fn each_contact_message_gets_one_reply_and_echoes_none(new_ids: bool) {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    if new_ids {
        world.fake.echo_sent_with_new_ids(true);
    } else {
        world.fake.echo_sent(true);
    }
    let (bot, url) = Bot::start().await;
    let bridge = start(&world, &bot, &url, "").await;

    for text in ["one", "two", "three"] {
        world.fake.queue(Msg::text(&alice, text));
    }
    until(&bridge, "the echoes of three replies", || {
        ["re: one", "re: two", "re: three"]
            .iter()
            .all(|t| !bot.messages(t).is_empty())
    })
    .await;
    world.fake.queue(Msg::text(&alice, "four"));
    until(&bridge, "the echo of the fourth reply", || {
        !bot.messages("re: four").is_empty()
    })
    .await;

    let sent: Vec<String> = world.fake.sent().into_iter().map(|m| m.content).collect();
    assert_eq!(sent, ["re: one", "re: two", "re: three", "re: four"]);
    assert!(world.fake.sent().iter().all(|m| m.to == alice));
    for text in ["one", "two", "three", "four"] {
        let asked = &bot.messages(text)[0];
        let echo = bot.messages(&format!("re: {text}"));
        assert_eq!(echo.len(), 1, "{echo:?}");
        assert_eq!(echo[0]["origin"], "bridge", "{}", echo[0]);
        let rid = format!("reply:test:{}", asked["id"].as_str().unwrap());
        assert_eq!(echo[0]["request_id"], rid.as_str(), "{}", echo[0]);
        if new_ids {
            assert_ne!(echo[0]["id"], json!(null));
            let msg_ids: Vec<String> = world.fake.sent().into_iter().map(|m| m.msg_id).collect();
            assert!(
                !msg_ids.iter().any(|id| echo[0]["id"] == id.as_str()),
                "the echo carries a MsgId of its own"
            );
        }
    }
}

#[tokio::test]
async fn echoes_with_the_send_msg_id_are_never_answered() {
    each_contact_message_gets_one_reply_and_echoes_none(false).await;
}

#[tokio::test]
async fn echoes_with_msg_ids_of_their_own_are_never_answered() {
    each_contact_message_gets_one_reply_and_echoes_none(true).await;
}

#[tokio::test]
async fn a_flooding_contact_gets_no_more_replies_than_the_budget() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let bob = world.fake.add_contact("Bob", "Bob");
    world.fake.echo_sent_with_new_ids(true);
    let (bot, url) = Bot::start().await;
    let bridge = start(&world, &bot, &url, "    max_replies_per_minute: 3\n").await;

    for i in 0..8 {
        world.fake.queue(Msg::text(&alice, &format!("flood {i}")));
    }
    world.fake.queue(Msg::text(&bob, "hello"));
    // Recipients take turns in the send queue, so Bob's reply may overtake the flood's: wait
    // for all eight flood messages to be accounted for (five dropped, three sent) and Bob's.
    until(&bridge, "five dropped replies logged", || {
        bridge.stderr().matches("reply dropped").count() >= 5
    })
    .await;
    until(&bridge, "the replies to the flood and to Bob", || {
        let sent = world.fake.sent();
        sent.iter().any(|m| m.to == bob) && sent.iter().filter(|m| m.to == alice).count() >= 3
    })
    .await;

    let sent = world.fake.sent();
    let to_alice: Vec<&str> = sent
        .iter()
        .filter(|m| m.to == alice)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(to_alice, ["re: flood 0", "re: flood 1", "re: flood 2"]);
    assert_eq!(sent.iter().filter(|m| m.to == bob).count(), 1);
    let stderr = bridge.stderr();
    assert_eq!(stderr.matches("reply dropped").count(), 5, "{stderr}");
}
