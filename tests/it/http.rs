//! The HTTP API against the real binary: every endpoint with reqwest, the token rules, readiness
//! following the sinks, and `/metrics` parsed as Prometheus text with counters that move.
use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_parse::{Scrape, Value as Metric};
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wxbridge_fake::Msg;

use crate::brokers;
use crate::support::{Bridge, World, WAIT};

/// A bridge's HTTP API.
pub struct Api {
    pub base: String,
    client: reqwest::Client,
    token: Option<String>,
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            token: None,
        }
    }

    /// The same API, sending `Authorization: Bearer <token>`.
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            base: self.base.clone(),
            client: self.client.clone(),
            token: Some(token.to_owned()),
        }
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.header(AUTHORIZATION, format!("Bearer {t}")),
            None => r,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.get(path).await;
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    /// Waits until the listener answers `/healthz`.
    pub async fn up(&self) {
        eventually("the HTTP API to answer", || async {
            match self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                Ok(r) => r.status() == StatusCode::OK,
                Err(_) => false,
            }
        })
        .await;
    }

    /// Waits until `/api/status` says `state`.
    pub async fn wait_state(&self, state: &str) {
        eventually(&format!("state {state} in /api/status"), || async {
            self.json("/api/status").await.1["state"] == state
        })
        .await;
    }

    pub async fn scrape(&self) -> Scrape {
        let r = self.get("/metrics").await;
        assert_eq!(r.status(), StatusCode::OK);
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = r.text().await.unwrap();
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }
}

/// Polls `check` until it holds, or panics after the harness's wait.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The value of the sample `name{labels}`; 0 when absent (a counter that never moved).
pub fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map_or(0.0, |s| match &s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => *v,
            other => panic!("{name} is not a plain sample: {other:?}"),
        })
}

fn has_sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> bool {
    scrape
        .samples
        .iter()
        .any(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
}

/// The world's config with an HTTP listener on `port`, `extra` YAML, and `send` overrides
/// (`key: value` lines added to the `send` section the harness writes).
fn config(world: &World, port: u16, extra: &str, send: &[&str]) -> PathBuf {
    let path = world.config(&format!("http:\n  listen: 127.0.0.1:{port}\n{extra}"));
    set_send(&path, send);
    path
}

fn set_send(path: &Path, lines: &[&str]) {
    let mut yaml = std::fs::read_to_string(path).unwrap();
    for line in lines {
        let key = line.split(':').next().unwrap();
        // Replace a key the harness already sets, else add it.
        let mut kept: Vec<&str> = yaml
            .lines()
            .filter(|l| !l.starts_with(&format!("  {key}:")))
            .collect();
        let at = kept.iter().position(|l| *l == "send:").unwrap() + 1;
        let new = format!("  {line}");
        kept.insert(at, &new);
        yaml = kept.join("\n") + "\n";
    }
    std::fs::write(path, yaml).unwrap();
}

/// Starts `run` with an HTTP listener; answers the process and its API once it answers.
pub async fn start(world: &World, extra: &str, send: &[&str]) -> (Bridge, Api) {
    let port = brokers::free_port();
    let bridge = Bridge::spawn(&config(world, port, extra, send), &["run"]);
    let api = Api::new(port);
    api.up().await;
    (bridge, api)
}

#[tokio::test]
async fn every_endpoint_answers_and_a_send_answers_with_its_result() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let (mut bridge, api) = start(&world, "", &["default_ttl: 2s"]).await;
    bridge.wait_state("login_required").await;

    let health = api.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok\n");

    let (code, ready) = api.json("/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["session"]["state"], "login_required");
    assert!(
        ready["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("session is login_required"),
        "{ready}"
    );
    assert_eq!(
        ready["sinks"],
        json!([{"name": "stdout", "connected": true}])
    );

    eventually("the QR at /qr.png", || async {
        api.get("/qr.png").await.status() == StatusCode::OK
    })
    .await;
    let qr = api.get("/qr.png").await;
    assert_eq!(qr.headers()["content-type"], "image/png");
    assert!(qr.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));

    let (code, _) = api.json("/contacts").await;
    assert_eq!(
        code,
        StatusCode::SERVICE_UNAVAILABLE,
        "no contacts before login"
    );

    // A new QR gets a new version, which is what makes the page load it.
    let (_, status) = api.json("/api/status").await;
    let first = status["qr"]["version"].as_str().unwrap().to_owned();
    tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .unwrap();
    world.fake.expire_qr();
    eventually("a new QR version", || async {
        let (_, status) = api.json("/api/status").await;
        status["qr"]["version"].as_str().is_some_and(|v| v != first)
    })
    .await;

    // Queued while logged out: the answer is the `expired` result at send.default_ttl.
    let early = api
        .post(
            "/send",
            r#"{"to":"Mom","text":"too early","request_id":"early"}"#,
        )
        .await;
    assert_eq!(early.status(), StatusCode::OK);
    let early: Value = early.json().await.unwrap();
    assert_eq!(early["kind"], "result");
    assert_eq!(early["request_id"], "early");
    assert_eq!(early["error"]["code"], "expired", "{early}");

    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    eventually("/readyz to say ready", || async {
        api.get("/readyz").await.status() == StatusCode::OK
    })
    .await;
    let (_, ready) = api.json("/readyz").await;
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(api.get("/qr.png").await.status(), StatusCode::NOT_FOUND);

    let (code, contacts) = api.json("/contacts").await;
    assert_eq!(code, StatusCode::OK);
    let alice = contacts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Alice")
        .unwrap_or_else(|| panic!("Alice in {contacts}"));
    assert_eq!(alice["remark"], "Mom");
    assert_eq!(alice["group"], false);
    // Contact keys: every contact of the fake is distinct, so each has one.
    for c in contacts.as_array().unwrap() {
        let key = c["key"].as_str().unwrap_or_default();
        assert!(wxbridge::event::is_contact_key(key), "{c}");
    }

    let sent = api
        .post(
            "/send",
            r#"{"to":"Mom","text":"hi from HTTP","request_id":"h-1"}"#,
        )
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
    let sent: Value = sent.json().await.unwrap();
    assert_eq!(sent["ok"], true, "{sent}");
    assert_eq!(sent["request_id"], "h-1");
    assert_eq!(sent["to"]["name"], "Mom");
    assert!(world
        .fake
        .sent()
        .iter()
        .any(|m| m.content == "hi from HTTP"));

    let bad = api.post("/send", "not json").await;
    assert_eq!(bad.status(), StatusCode::OK);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["error"]["code"], "invalid_json");

    let big = api.post("/send", "x".repeat(70_000)).await;
    assert_eq!(
        big.status(),
        StatusCode::OK,
        "over send.max_bytes is a result"
    );
    let big: Value = big.json().await.unwrap();
    assert_eq!(big["error"]["code"], "invalid_command", "{big}");

    let unknown = api
        .post("/send", r#"{"to":"Nobody","text":"?"}"#)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(unknown["error"]["code"], "unknown_recipient");

    let relogin = api.post("/relogin", "").await;
    assert_eq!(relogin.status(), StatusCode::ACCEPTED);

    let (code, status) = api.json("/api/status").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status["account"], "test");
    assert_eq!(status["state"], "online");
    assert!(status["qr"].is_null());
    assert_eq!(status["sinks"][0]["name"], "stdout");
    let events = status["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "login"),
        "the login is among the recent events: {status}"
    );
    assert_eq!(events[0]["kind"], "result", "newest first: {status}");

    let scrape = api.scrape().await;
    let state = |s| sample(&scrape, "wxbridge_session_state", &[("state", s)]);
    assert_eq!(state("online"), 1.0);
    assert_eq!(state("login_required"), 0.0);
    let logins = |k| sample(&scrape, "wxbridge_logins_total", &[("kind", k)]);
    assert_eq!(
        (logins("qr"), logins("stored"), logins("push")),
        (1.0, 0.0, 0.0)
    );
    let results = |r| sample(&scrape, "wxbridge_send_results_total", &[("result", r)]);
    assert_eq!(results("ok"), 1.0);
    assert_eq!(results("expired"), 1.0);
    assert_eq!(results("invalid_json"), 1.0);
    assert_eq!(results("invalid_command"), 1.0);
    assert_eq!(results("unknown_recipient"), 1.0);
    assert_eq!(bridge.stop().await, 0);
}

#[tokio::test]
async fn metrics_counters_move_after_messages_and_sends() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    // One send at once, then one every 200 ms: the second send of a pair waits.
    let (mut bridge, api) = start(&world, "", &["rate: { per_second: 5, burst: 1 }"]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    let before = api.scrape().await;
    let text = |s: &Scrape| sample(s, "wxbridge_messages_received_total", &[("type", "text")]);
    let image = |s: &Scrape| sample(s, "wxbridge_messages_received_total", &[("type", "image")]);
    let delivered =
        |s: &Scrape, sink| sample(s, "wxbridge_events_delivered_total", &[("sink", sink)]);

    for i in 0..3 {
        world.fake.queue(Msg::text(&alice, &format!("counted {i}")));
    }
    world.fake.queue(Msg::image(&alice));
    for _ in 0..4 {
        bridge.next_message().await;
    }
    for n in 1..=2 {
        let r: Value = api
            .post("/send", format!(r#"{{"to":"Mom","text":"send {n}"}}"#))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r["ok"], true, "{r}");
    }

    // 4 messages and 2 results, counted once each sink confirmed them.
    eventually("the deliveries to be counted", || async {
        let s = api.scrape().await;
        delivered(&s, "stdout") - delivered(&before, "stdout") >= 6.0
            && delivered(&s, "recent") - delivered(&before, "recent") >= 6.0
    })
    .await;
    let after = api.scrape().await;
    assert_eq!(text(&after) - text(&before), 3.0);
    assert_eq!(image(&after) - image(&before), 1.0);
    assert_eq!(
        sample(&after, "wxbridge_send_results_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        sample(&after, "wxbridge_send_throttle_wait_seconds_count", &[]),
        1.0,
        "the second send waited for the throttle"
    );
    assert!(sample(&after, "wxbridge_send_throttle_wait_seconds_sum", &[]) > 0.05);
    // The messages and results were made durable: the spool's syncs are counted.
    let fsyncs = |s: &Scrape| sample(s, "wxbridge_spool_fsyncs_total", &[]);
    assert!(fsyncs(&after) > fsyncs(&before), "spool fsyncs counted");

    assert!(has_sample(
        &after,
        "wxbridge_spool_depth",
        &[("sink", "stdout")]
    ));
    assert!(has_sample(
        &after,
        "wxbridge_spool_oldest_event_age_seconds",
        &[("sink", "stdout")]
    ));
    assert_eq!(
        sample(&after, "wxbridge_sink_connected", &[("sink", "stdout")]),
        1.0
    );
    assert!(has_sample(&after, "wxbridge_send_queue_depth", &[]));
    assert!(has_sample(&after, "wxbridge_last_sync_age_seconds", &[]));
    assert!(sample(&after, "wxbridge_last_sync_age_seconds", &[]) < 30.0);
    assert_eq!(
        sample(
            &after,
            "wxbridge_delivery_failures_total",
            &[("sink", "stdout")]
        ),
        0.0
    );
    assert!(
        after.docs.contains_key("wxbridge_messages_received_total"),
        "every metric has a HELP line"
    );
    assert_eq!(bridge.stop().await, 0);
}

#[tokio::test]
async fn with_a_token_every_endpoint_but_healthz_needs_it() {
    let world = World::new().await;
    let token = "s3cret token/+=";
    let (bridge, api) = start(&world, &format!("  token: \"{token}\"\n"), &[]).await;
    let authed = api.with_token(token);
    let wrong = api.with_token("s3cret");

    assert_eq!(api.get("/healthz").await.status(), StatusCode::OK);
    let guarded = [
        ("GET", "/"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/contacts"),
        ("GET", "/qr.png"),
        ("GET", "/api/status"),
        ("GET", "/page.js"),
        ("POST", "/send"),
        ("POST", "/relogin"),
    ];
    for (method, path) in guarded {
        let method: reqwest::Method = method.parse().unwrap();
        for client in [&api, &wrong] {
            let r = client.request(method.clone(), path).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        }
    }
    let r = api.get("/metrics").await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    assert_eq!(authed.get("/api/status").await.status(), StatusCode::OK);
    assert_eq!(authed.get("/metrics").await.status(), StatusCode::OK);
    assert_eq!(authed.get("/").await.status(), StatusCode::OK);
    assert_eq!(
        authed.post("/relogin", "").await.status(),
        StatusCode::ACCEPTED
    );

    // The page login: checked once, then an HttpOnly cookie that is not the token.
    let encoded: String = url_encode(token);
    assert_eq!(
        api.get("/?token=wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let login = api.get(&format!("/?token={encoded}")).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    assert_eq!(login.headers()[LOCATION], "/");
    let set = login.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(
        !set.contains("s3cret"),
        "the cookie is not the token: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let with_cookie = |method: reqwest::Method, path: &str| {
        api.request(method, path).header(COOKIE, cookie.clone())
    };
    let page = with_cookie(reqwest::Method::GET, "/").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("<title>wxbridge</title>"));
    let status = with_cookie(reqwest::Method::GET, "/api/status")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), StatusCode::OK);

    // Another site's page cannot make the browser post, cookie or not.
    let forged = with_cookie(reqwest::Method::POST, "/relogin")
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let own = with_cookie(reqwest::Method::POST, "/relogin")
        .header(ORIGIN, api.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::ACCEPTED);
    assert_eq!(bridge.stop().await, 0);
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn readiness_follows_the_mqtt_link() {
    let world = World::new().await;
    let mut mqtt = brokers::mosquitto();
    let (bridge, api) = start(
        &world,
        &format!(
            "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-http\n",
            mqtt.port
        ),
        &[],
    )
    .await;
    api.wait_state("login_required").await;
    world.scan_and_confirm().await;
    api.wait_state("online").await;
    eventually("/readyz to say ready", || async {
        api.get("/readyz").await.status() == StatusCode::OK
    })
    .await;
    let (_, status) = api.json("/api/status").await;
    let sinks = status["sinks"].as_array().unwrap();
    assert_eq!(
        sinks.len(),
        1,
        "no stdout when a bus is configured: {status}"
    );
    assert_eq!(sinks[0]["name"], "mqtt");
    assert_eq!(sinks[0]["connected"], true);

    mqtt.stop();
    eventually("/readyz to name the mqtt sink", || async {
        let (code, body) = api.json("/readyz").await;
        code == StatusCode::SERVICE_UNAVAILABLE
            && body["problems"] == json!(["sink mqtt is not connected"])
    })
    .await;
    let scrape = api.scrape().await;
    assert_eq!(
        sample(&scrape, "wxbridge_sink_connected", &[("sink", "mqtt")]),
        0.0
    );

    mqtt.start();
    eventually("/readyz to recover", || async {
        api.get("/readyz").await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(bridge.stop().await, 0);
}

#[tokio::test]
async fn a_taken_port_stops_run_with_an_error_naming_the_address() {
    let world = World::new().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let bridge = Bridge::spawn(&config(&world, port, "", &[]), &["run"]);
    let (code, stderr) = bridge.exit().await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("http.listen"),
        "{stderr}"
    );
}
