//! `run` with several accounts in one process, each on its own fake WeChat: events and sends
//! never cross (NATS, a shared webhook, HTTP `/accounts/<account>/…`), one account's expired
//! session does not disturb the other, and a panic in one account's bridge is contained and
//! answered by a restart while the other goes on.
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wxbridge_fake::Msg;

use crate::brokers::{self, Broker};
use crate::bus::Receiver;
use crate::http::{eventually, sample, Api};
use crate::support::{Bridge, World, GENEROUS_LIMITS, WAIT};
use crate::watch::Watcher;

/// Writes a config with two accounts, `home` on `home`'s fake and `office` on `office`'s, in
/// `home`'s state dir, quick retries, generous send limits and `sections` (whole top-level
/// YAML sections); answers its path.
pub fn two_accounts_config(home: &World, office: &World, sections: &str) -> PathBuf {
    let config = home.dir.path().join("accounts.yaml");
    let yaml = format!(
        "state_dir: {state}\n\
         retry:\n  initial: 50ms\n  max: 500ms\n\
         send:\n  rate: {{ per_second: 50, burst: 50 }}\n  {GENEROUS_LIMITS}\n\
         {sections}\
         accounts:\n\
         \x20 - account: home\n    wechat: {{ login_url: {home_url} }}\n\
         \x20 - account: office\n    wechat: {{ login_url: {office_url} }}\n",
        state = home.state_dir().display(),
        home_url = home.fake.url(),
        office_url = office.fake.url(),
    );
    std::fs::write(&config, yaml).unwrap();
    config
}

/// Two accounts, `home` on `home`'s fake and `office` on `office`'s, in one process with
/// NATS, a webhook and the HTTP API; the state dir is `home`'s world's.
struct Two {
    home: World,
    office: World,
    nats: Broker,
    hook: Receiver,
    api: Api,
    config: PathBuf,
}

impl Two {
    async fn new() -> Two {
        Two::with_nats("").await
    }

    /// [`Two::new`] with `nats_extra` (YAML lines of the `nats` section, indented two, then
    /// any other sections).
    async fn with_nats(nats_extra: &str) -> Two {
        let (home, office) = (World::new().await, World::new().await);
        let nats = brokers::nats_server();
        let (hook, hook_url) = Receiver::start().await;
        let port = brokers::free_port();
        let config = two_accounts_config(
            &home,
            &office,
            &format!(
                "nats:\n  url: nats://127.0.0.1:{nats}\n{nats_extra}\
                 webhooks:\n  - url: {hook_url}\n    secret: a-shared-secret\n\
                 http:\n  listen: 127.0.0.1:{port}\n",
                nats = nats.port,
            ),
        );
        Two {
            home,
            office,
            nats,
            hook,
            api: Api::new(port),
            config,
        }
    }

    /// Starts `run` with `env`, logs both accounts in and waits until both are online.
    async fn run(&self, env: &[(&str, &str)]) -> Bridge {
        let bridge = Bridge::spawn_with_env(&self.config, &["run"], env);
        self.api.up().await;
        tokio::join!(self.home.scan_and_confirm(), self.office.scan_and_confirm());
        self.wait_state("home", "online").await;
        self.wait_state("office", "online").await;
        bridge
    }

    async fn wait_state(&self, account: &str, state: &str) {
        let path = format!("/accounts/{account}/api/status");
        eventually(&format!("{account} {state}"), || async {
            self.api.json(&path).await.1["state"] == state
        })
        .await;
    }

    async fn nats(&self) -> async_nats::Client {
        async_nats::connect(format!("127.0.0.1:{}", self.nats.port))
            .await
            .unwrap()
    }
}

/// The next message on `sub` whose JSON says `text`, skipping others (which are returned too,
/// to check they belong).
async fn nats_text(sub: &mut async_nats::Subscriber, text: &str) -> (String, Value, Vec<Value>) {
    let mut before = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(m) = sub.next().await {
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            if v["text"] == text {
                return (m.subject.to_string(), v);
            }
            before.push(v);
        }
        panic!("the subscription ended");
    })
    .await;
    let (subject, v) = found.unwrap_or_else(|_| panic!("no NATS message with {text:?}"));
    (subject, v, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_keep_their_events_and_sends_apart() {
    let two = Two::new().await;
    let mom = two.home.fake.add_contact("Mother", "Mom");
    let boss = two.office.fake.add_contact("Chief", "Boss");
    let _bridge = two.run(&[]).await;
    let nc = two.nats().await;
    let mut home_sub = nc.subscribe("wechat.home.message").await.unwrap();
    let mut office_sub = nc.subscribe("wechat.office.message").await.unwrap();
    nc.flush().await.unwrap();

    two.home.fake.queue(Msg::text(&mom, "for home"));
    two.office.fake.queue(Msg::text(&boss, "for office"));
    let (_, at_home, _) = nats_text(&mut home_sub, "for home").await;
    let (_, at_office, _) = nats_text(&mut office_sub, "for office").await;
    assert_eq!(at_home["account"], "home", "{at_home}");
    assert_eq!(at_office["account"], "office", "{at_office}");
    // A later message on each proves nothing of the other's came before it.
    two.home.fake.queue(Msg::text(&mom, "home again"));
    two.office.fake.queue(Msg::text(&boss, "office again"));
    let (_, _, between) = nats_text(&mut home_sub, "home again").await;
    assert!(
        between.is_empty(),
        "only home's on home's subject: {between:?}"
    );
    let (_, _, between) = nats_text(&mut office_sub, "office again").await;
    assert!(between.is_empty(), "only office's: {between:?}");

    // The one webhook gets both accounts' events, each naming its account.
    for (text, account) in [("for home", "home"), ("for office", "office")] {
        let (headers, event) = two.hook.with_text(text).await;
        assert_eq!(event["account"], account, "{event}");
        let id = headers["webhook-id"].to_str().unwrap();
        assert!(id.starts_with(&format!("{account}:")), "{id}");
        assert_eq!(headers["x-wxbridge-account"], account);
    }

    // Sends: over NATS to home's subject, over HTTP to office's path; each reaches its own
    // WeChat only, and a name only the other account knows is unknown here.
    let reply = nc
        .request(
            "wechat.home.send",
            Bytes::from_static(br#"{"to":"Mom","text":"from home","request_id":"h-1"}"#),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    let r = two
        .api
        .post(
            "/accounts/office/send",
            json!({"to": "Boss", "text": "from office", "request_id": "o-1"}).to_string(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["ok"], true, "{result}");
    let r = two
        .api
        .post(
            "/accounts/home/send",
            json!({"to": "Boss", "text": "wrong account", "request_id": "h-2"}).to_string(),
        )
        .await;
    let result: Value = r.json().await.unwrap();
    assert_eq!(
        result["error"]["code"], "unknown_recipient",
        "Boss is office's contact: {result}"
    );
    let home_sent = two.home.fake.wait_sent(1, WAIT).await;
    let office_sent = two.office.fake.wait_sent(1, WAIT).await;
    assert_eq!(
        home_sent
            .iter()
            .map(|s| (s.to.as_str(), s.content.as_str()))
            .collect::<Vec<_>>(),
        [(mom.as_str(), "from home")]
    );
    assert_eq!(
        office_sent
            .iter()
            .map(|s| (s.to.as_str(), s.content.as_str()))
            .collect::<Vec<_>>(),
        [(boss.as_str(), "from office")]
    );

    // The plain per-account paths name the ones to use; the process-wide ones stay.
    let (status, body) = two.api.json("/send").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("/accounts/<account>/send") && error.contains("home, office"),
        "{error}"
    );
    let (status, ready) = two.api.json("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let accounts: Vec<&str> = ready["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, ["home", "office"]);
    let (status, contacts) = two.api.json("/accounts/office/contacts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(contacts.to_string().contains("Chief"), "{contacts}");
    assert!(!contacts.to_string().contains("Mother"), "{contacts}");

    // A received file's link in the event points under its account's path, and opens there.
    two.home.fake.queue(Msg::image(&mom));
    let photo = tokio::time::timeout(WAIT, async {
        loop {
            let m = home_sub.next().await.unwrap();
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v["type"] == "image" {
                return v;
            }
        }
    })
    .await
    .expect("the image event");
    let url = url::Url::parse(photo["media"]["url"].as_str().unwrap()).unwrap();
    assert!(url.path().starts_with("/accounts/home/media/"), "{url}");
    let r = two
        .api
        .get(&format!("{}?{}", url.path(), url.query().unwrap()))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{url}");

    // Each account's media links are signed with its own key and open under its own path.
    let office_key =
        wxbridge::media::Signer::load_or_create(&two.home.state_dir().join("office")).unwrap();
    let sha = "ab".repeat(32);
    let link = office_key.url(
        &url::Url::parse(&format!("{}/accounts/office/", two.api.base)).unwrap(),
        &sha,
        u64::MAX / 2,
    );
    let query = link.query().unwrap().to_owned();
    assert_eq!(link.path(), format!("/accounts/office/media/{sha}"));
    let r = two.api.get(&format!("{}?{query}", link.path())).await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "office's key, office's path: not stored"
    );
    let r = two
        .api
        .get(&format!("/accounts/home/media/{sha}?{query}"))
        .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "office's key opens nothing of home's"
    );

    // Every per-account series carries its account.
    let scrape = two.api.scrape().await;
    for account in ["home", "office"] {
        let received = sample(
            &scrape,
            "wxbridge_messages_received_total",
            &[("type", "text"), ("account", account)],
        );
        assert_eq!(received, 2.0, "{account}");
        let images = sample(
            &scrape,
            "wxbridge_messages_received_total",
            &[("type", "image"), ("account", account)],
        );
        assert_eq!(images, f64::from(account == "home"), "{account}");
        let online = sample(
            &scrape,
            "wxbridge_session_state",
            &[("state", "online"), ("account", account)],
        );
        assert_eq!(online, 1.0, "{account}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_accounts_expired_session_leaves_the_others_events_and_sends_alone() {
    let two = Two::new().await;
    let boss = two.office.fake.add_contact("Chief", "Boss");
    let _bridge = two.run(&[]).await;
    let nc = two.nats().await;
    let mut office_sub = nc.subscribe("wechat.office.message").await.unwrap();
    nc.flush().await.unwrap();

    // Home's session ends; home waits for a scan that does not come.
    two.home.fake.expire_session(1101);
    two.wait_state("home", "login_required").await;

    two.office.fake.queue(Msg::text(&boss, "still here"));
    let (_, event, _) = nats_text(&mut office_sub, "still here").await;
    assert_eq!(event["account"], "office");
    let reply = nc
        .request(
            "wechat.office.send",
            Bytes::from_static(br#"{"to":"Boss","text":"still sending","request_id":"o-9"}"#),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    let (status, office) = two.api.json("/accounts/office/api/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(office["state"], "online", "{office}");
    let (status, ready) = two.api.json("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let problems = ready["problems"].to_string();
    assert!(
        problems.contains("account home: session is login_required"),
        "{problems}"
    );
    assert!(!problems.contains("account office"), "{problems}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_accounts_bridge_restarts_it_and_the_other_goes_on() {
    let two = Two::new().await;
    let mom = two.home.fake.add_contact("Mother", "Mom");
    let boss = two.office.fake.add_contact("Chief", "Boss");
    let nc = two.nats().await;
    let mut home_sub = nc.subscribe("wechat.home.message").await.unwrap();
    let mut office_sub = nc.subscribe("wechat.office.message").await.unwrap();
    nc.flush().await.unwrap();
    // Home's bridge panics once, the first time it is online (a debug-build test switch).
    let bridge = two.run(&[("WXBRIDGE_TEST_PANIC", "home")]).await;

    let restarted = || async {
        let scrape = two.api.scrape().await;
        sample(
            &scrape,
            "wxbridge_account_restarts_total",
            &[("account", "home")],
        ) == 1.0
    };
    eventually("home's restart counted", restarted).await;
    let scrape = two.api.scrape().await;
    assert_eq!(
        sample(
            &scrape,
            "wxbridge_account_restarts_total",
            &[("account", "office")]
        ),
        0.0
    );
    two.office.fake.queue(Msg::text(&boss, "office unharmed"));
    nats_text(&mut office_sub, "office unharmed").await;

    // Restarted on the same intake, watches and spool: the stored session resumes without
    // a scan, messages flow again and commands reach WeChat.
    two.wait_state("home", "online").await;
    two.home.fake.queue(Msg::text(&mom, "home is back"));
    let (_, event, _) = nats_text(&mut home_sub, "home is back").await;
    assert_eq!(event["account"], "home");
    let reply = nc
        .request(
            "wechat.home.send",
            Bytes::from_static(br#"{"to":"Mom","text":"after the restart","request_id":"h-7"}"#),
        )
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(two.home.fake.logins(), 1, "no new QR login for the restart");
    let stderr = bridge.stderr();
    let logged = stderr
        .lines()
        .find(|l| l.contains("the account's bridge panicked"))
        .unwrap_or_else(|| panic!("the panic is logged: {stderr}"));
    assert!(logged.contains("account{account=home}"), "{logged}");
    assert!(
        logged.contains("WXBRIDGE_TEST_PANIC"),
        "its message: {logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_jetstream_stream_holds_every_accounts_events_on_its_own_subjects() {
    let two = Two::with_nats("  jetstream: true\n").await;
    let mom = two.home.fake.add_contact("Mother", "Mom");
    let boss = two.office.fake.add_contact("Chief", "Boss");
    let _bridge = two.run(&[]).await;
    two.home.fake.queue(Msg::text(&mom, "stored for home"));
    two.office.fake.queue(Msg::text(&boss, "stored for office"));
    two.hook.with_text("stored for home").await;
    two.hook.with_text("stored for office").await;

    let js = async_nats::jetstream::new(two.nats().await);
    let mut stream = js
        .get_stream("WECHAT")
        .await
        .expect("the stream was created");
    let mut subjects = stream.info().await.unwrap().config.subjects.clone();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "wechat.home.event",
            "wechat.home.message",
            "wechat.office.event",
            "wechat.office.message"
        ]
    );
    for (subject, text) in [
        ("wechat.home.message", "stored for home"),
        ("wechat.office.message", "stored for office"),
    ] {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                if let Ok(m) = stream.get_last_raw_message_by_subject(subject).await {
                    let v: Value = serde_json::from_slice(&m.payload).unwrap();
                    if v["text"] == text {
                        return v;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{text:?} in the stream on {subject}"));
        assert_eq!(found["account"], subject.split('.').nth(1).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sink_stdout_carries_every_account_and_stdin_commands_name_theirs() {
    let (home, office) = (World::new().await, World::new().await);
    let mom = home.fake.add_contact("Mother", "Mom");
    let boss = office.fake.add_contact("Chief", "Boss");
    let config = home.dir.path().join("accounts.yaml");
    let yaml = format!(
        "state_dir: {state}\n\
         retry:\n  initial: 50ms\n  max: 500ms\n\
         send:\n  rate: {{ per_second: 50, burst: 50 }}\n  {GENEROUS_LIMITS}\n\
         accounts:\n\
         \x20 - account: home\n    wechat: {{ login_url: {home_url} }}\n\
         \x20 - account: office\n    wechat: {{ login_url: {office_url} }}\n",
        state = home.state_dir().display(),
        home_url = home.fake.url(),
        office_url = office.fake.url(),
    );
    std::fs::write(&config, yaml).unwrap();
    let mut bridge = Bridge::spawn(&config, &["run"]);
    tokio::join!(home.scan_and_confirm(), office.scan_and_confirm());
    for account in ["home", "office"] {
        bridge
            .seen_or_next(&format!("{account} online"), |v| {
                v["kind"] == "state" && v["state"] == "online" && v["account"] == account
            })
            .await;
    }

    home.fake.queue(Msg::text(&mom, "to stdout from home"));
    office.fake.queue(Msg::text(&boss, "to stdout from office"));
    for (account, text) in [
        ("home", "to stdout from home"),
        ("office", "to stdout from office"),
    ] {
        let m = bridge
            .seen_or_next(text, |v| v["kind"] == "message" && v["text"] == text)
            .await;
        assert_eq!(m["account"], account, "{m}");
    }

    bridge
        .send_line(
            br#"{"account":"office","to":"Boss","text":"stdin to office","request_id":"s-1"}"#,
        )
        .await;
    let result = bridge
        .next_where("s-1", |v| v["kind"] == "result" && v["request_id"] == "s-1")
        .await;
    assert_eq!(result["ok"], true, "{result}");
    let sent = office.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent[0].content, "stdin to office");
    assert!(home.fake.sent().is_empty());

    // A line that names no account is refused on stderr, and the next one still goes.
    bridge
        .send_line(br#"{"to":"Mom","text":"whose?","request_id":"s-2"}"#)
        .await;
    bridge
        .send_line(br#"{"account":"home","to":"Mom","text":"stdin to home","request_id":"s-3"}"#)
        .await;
    let result = bridge
        .next_where("s-3", |v| v["kind"] == "result" && v["request_id"] == "s-3")
        .await;
    assert_eq!(result["ok"], true, "{result}");
    let sent = home.fake.wait_sent(1, WAIT).await;
    assert_eq!(
        sent.iter().map(|s| s.content.as_str()).collect::<Vec<_>>(),
        ["stdin to home"]
    );
    assert!(
        bridge.stderr().contains("stdin command refused")
            && bridge.stderr().contains("home, office"),
        "{}",
        bridge.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_one_mqtt_connection_each_account_has_its_own_topics() {
    let mqtt = brokers::mosquitto();
    let two = Two::with_nats(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-two\n",
        mqtt.port
    ))
    .await;
    let mom = two.home.fake.add_contact("Mother", "Mom");
    let boss = two.office.fake.add_contact("Chief", "Boss");
    let mut w = Watcher::new(mqtt.port, "observer", "wechat/#").await;
    let _bridge = two.run(&[]).await;

    two.home.fake.queue(Msg::text(&mom, "mqtt home"));
    two.office.fake.queue(Msg::text(&boss, "mqtt office"));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = w.next().await;
        if m.topic.ends_with("/message") {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            seen.push((m.topic, v["text"].as_str().unwrap().to_owned()));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("wechat/home/message".to_owned(), "mqtt home".to_owned()),
            ("wechat/office/message".to_owned(), "mqtt office".to_owned())
        ]
    );

    w.publish(
        "wechat/office/send",
        false,
        br#"{"to":"Boss","text":"over mqtt","request_id":"q-1"}"#.to_vec(),
    )
    .await;
    let result = w.next_on("wechat/office/send/result").await;
    let result: Value = serde_json::from_slice(&result.payload).unwrap();
    assert_eq!(result["ok"], true, "{result}");
    let sent = two.office.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent[0].content, "over mqtt");
    assert!(two.home.fake.sent().is_empty(), "nothing went out of home");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_listed_under_accounts_keeps_the_plain_paths() {
    let world = World::new().await;
    world.fake.add_contact("Mother", "Mom");
    let port = brokers::free_port();
    let config = world.dir.path().join("one.yaml");
    let yaml = format!(
        "state_dir: {state}\n\
         retry:\n  initial: 50ms\n  max: 500ms\n\
         send:\n  rate: {{ per_second: 50, burst: 50 }}\n  {GENEROUS_LIMITS}\n\
         http:\n  listen: 127.0.0.1:{port}\n\
         accounts:\n\
         \x20 - account: solo\n    wechat: {{ login_url: {url} }}\n",
        state = world.state_dir().display(),
        url = world.fake.url(),
    );
    std::fs::write(&config, yaml).unwrap();
    let _bridge = Bridge::spawn(&config, &["run"]);
    let api = Api::new(port);
    api.up().await;
    world.scan_and_confirm().await;
    api.wait_state("online").await;

    let r = api
        .post(
            "/send",
            json!({"to": "Mom", "text": "plain path", "request_id": "p-1"}).to_string(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["ok"], true, "{result}");
    let (status, body) = api.json("/api/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["account"], "solo");
    let r = api.get("/accounts/solo/api/status").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, ready) = api.json("/readyz").await;
    assert!(ready.get("accounts").is_none(), "{ready}");
    assert_eq!(ready["session"]["state"], "online", "{ready}");
}
