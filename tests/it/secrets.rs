//! Secrets and message contents stay out of the logs, and the state stays private: a full run
//! (QR login, messages, a send, MQTT, NATS, a webhook and the HTTP listener, each with a
//! credential) has its stderr searched for every secret at trace level for every target (and
//! for lines of the crates known to log cookies), and for message texts at info level; `check-config` masks the secrets; the state dir is 0700 and its files 0600.
//! `send.allow` refuses every other recipient with `forbidden`, and an `https://` webhook is
//! delivered only to a certificate a trusted CA signed (a CA made here with `openssl`).
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use wxbridge_fake::Msg;

use crate::brokers::{self, Broker};
use crate::support::{Bridge, World, WAIT};
use crate::tls;

const MQTT_PASSWORD: &str = "mqtt-pw-7Hd92kLqZ";
const NATS_TOKEN: &str = "nats-token-Wq83nZp1X";
const WEBHOOK_SECRET: &str = "hook-secret-Kq3vZ9pL2m";
const HTTP_TOKEN: &str = "http-token-Lm4x9Qe2R";
/// A near miss of [`HTTP_TOKEN`], as a typo would send it.
const WRONG_TOKEN: &str = "http-token-Lm4x9Qe2r";
/// A message that makes the webhook receiver answer with a reply, so the run sends one.
const PING: &str = "ping from mom 7f3a";
const REPLY: &str = "pong to mom 7f3a";

/// A webhook receiver: records each event and answers a message saying [`PING`] with a
/// reply, which the bridge sends back through its outbound path.
#[derive(Clone, Default)]
struct Hook {
    events: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    async fn start() -> (Hook, String) {
        let hook = Hook::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (hook, url)
    }

    /// The `text` of every message event received.
    fn texts(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| e["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until a message with each of `texts` has arrived.
    async fn wait_for(&self, texts: &[&str]) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while texts.iter().any(|t| !self.texts().iter().any(|s| s == t)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the webhook got only {:?}",
                self.texts()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> String {
    let event: Value = serde_json::from_slice(&body).unwrap_or_default();
    let ping = event["text"] == PING && event["origin"] == "contact";
    hook.events.lock().unwrap().push(event);
    if ping {
        format!(r#"{{"reply":"{REPLY}"}}"#)
    } else {
        String::new()
    }
}

/// The brokers and the receiver one configuration points at.
struct Links {
    _mqtt: Broker,
    _nats: Broker,
    hook: Hook,
    /// The HTTP listener's address.
    http: String,
    yaml: String,
}

/// Every sink and the HTTP listener, each with a credential.
async fn links() -> Links {
    let mqtt = brokers::mosquitto();
    let nats = brokers::nats_server();
    let (hook, hook_url) = Hook::start().await;
    let http = format!("127.0.0.1:{}", brokers::free_port());
    // mosquitto with `allow_anonymous true` and nats-server without auth accept any
    // credentials, so the client sends them as it would to a real broker.
    let yaml = format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{mqtt}\n  client_id: wxbridge-secrets\n  username: bridge\n  password: {MQTT_PASSWORD}\n\
         nats:\n  url: nats://127.0.0.1:{nats}\n  token: {NATS_TOKEN}\n\
         webhooks:\n  - url: {hook_url}\n    secret: {WEBHOOK_SECRET}\n    events: [message]\n\
         http:\n  listen: {http}\n  token: {HTTP_TOKEN}\n",
        mqtt = mqtt.port,
        nats = nats.port,
    );
    Links {
        _mqtt: mqtt,
        _nats: nats,
        hook,
        http,
        yaml,
    }
}

/// `wxbridge run` with a chosen `RUST_LOG` (the harness's [`Bridge`] fixes its own), its
/// stderr kept whole. Sinks are configured, so stdout carries nothing.
struct Run {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Run {
    fn start(config: &Path, rust_log: &str) -> Run {
        Run::start_with(config, rust_log, &[])
    }

    fn start_with(config: &Path, rust_log: &str, env: &[(&str, &Path)]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wxbridge"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the wxbridge binary starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let kept = stderr.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Run {
            child,
            stderr,
            reader,
        }
    }

    /// Waits until a line of stderr matches `pred`.
    async fn wait_for_line(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.stderr.lock().unwrap().lines().any(&pred) {
            assert!(tokio::time::Instant::now() < deadline, "no log line {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then everything it wrote on stderr.
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("still running").to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("the bridge stops")
            .unwrap();
        tokio::time::timeout(WAIT, self.reader)
            .await
            .expect("stderr closes")
            .unwrap();
        std::mem::take(&mut *self.stderr.lock().unwrap())
    }
}

/// The session's secrets as the fake handed them out: skey, pass_ticket (as sent and decoded),
/// wxsid and the cookie values.
fn session_secrets(world: &World) -> Vec<(String, String)> {
    let session = world.fake.session().expect("logged in");
    let mut secrets = vec![
        ("skey".to_owned(), session.skey.clone()),
        ("wxsid".to_owned(), session.sid.clone()),
        ("pass_ticket".to_owned(), session.pass_ticket.clone()),
    ];
    let decoded = percent_encoding::percent_decode_str(&session.pass_ticket)
        .decode_utf8_lossy()
        .into_owned();
    secrets.push(("pass_ticket (decoded)".to_owned(), decoded));
    let sync = world.fake.requests("webwxsync");
    let request = sync.last().expect("the bridge synced");
    for name in [
        "wxsid",
        "webwx_data_ticket",
        "webwx_auth_ticket",
        "webwxuvid",
    ] {
        if let Some(value) = request.cookie(name) {
            secrets.push((format!("cookie {name}"), value));
        }
    }
    secrets
}

fn config_secrets() -> Vec<(String, String)> {
    [
        ("mqtt.password", MQTT_PASSWORD),
        ("nats.token", NATS_TOKEN),
        ("webhooks[0].secret", WEBHOOK_SECRET),
        ("http.token", HTTP_TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A value as it may be written: as is, and escaped for a query string or a URL, since
/// skey, sid and pass_ticket travel in URLs (`@crypt_…` becomes `%40crypt_…`).
fn spellings(value: &str) -> Vec<String> {
    let query: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let path = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let mut all = vec![value.to_owned(), query, path];
    all.dedup();
    all
}

/// Fails naming every secret that `log` contains in any spelling, with the line it is on.
fn assert_absent(what: &str, log: &str, secrets: &[(String, String)]) {
    let leaks: Vec<String> = secrets
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .flat_map(|(name, value)| spellings(value).into_iter().map(move |s| (name, s)))
        .filter_map(|(name, value)| {
            log.lines()
                .find(|line| line.contains(value.as_str()))
                .map(|line| format!("{name} in: {line}"))
        })
        .collect();
    assert!(leaks.is_empty(), "{what} leaks:\n{}", leaks.join("\n"));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_at_trace_level_logs_no_secret() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    world.fake.echo_sent(true);
    let links = links().await;
    let config = world.config(&links.yaml);

    let run = Run::start(&config, "trace");
    world.scan_and_confirm().await;
    world.fake.queue(Msg::text(&alice, PING));
    world.fake.queue(Msg::text(&alice, "see you at 7"));
    links.hook.wait_for(&[PING, "see you at 7", REPLY]).await;
    let sent = world.fake.wait_sent(1, WAIT).await;
    assert_eq!(sent[0].content, REPLY);
    // The token as the status page's login link and as a header, and a wrong one.
    let http = reqwest::Client::new();
    let base = format!("http://{}", links.http);
    for (path, bearer) in [
        (format!("/?token={HTTP_TOKEN}"), None),
        ("/api/status".to_owned(), Some(HTTP_TOKEN)),
        ("/api/status".to_owned(), Some(WRONG_TOKEN)),
    ] {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the HTTP listener answers");
    }
    let mut secrets = [session_secrets(&world), config_secrets()].concat();
    secrets.push(("a wrong http token".to_owned(), WRONG_TOKEN.to_owned()));
    // A dead server makes the next synccheck fail in transport, whose error is logged: the
    // request URL carries skey, sid and pass_ticket.
    world.fake.shutdown();
    run.wait_for_line("about the failed synccheck", |l| {
        l.contains("WARN") && l.contains("synccheck")
    })
    .await;
    let log = run.stop().await;
    assert!(
        log.contains("TRACE"),
        "the run logged at trace level:\n{log}"
    );
    assert_absent("a trace-level run", &log, &secrets);
    // The crates that write cookie values into their lines (cookie_store logs each Set-Cookie
    // it stores) stay silent even when RUST_LOG asks for everything.
    for target in [
        "cookie_store",
        "reqwest_cookie_store",
        "reqwest::connect::verbose",
    ] {
        let line = log.lines().find(|l| l.contains(&format!("{target}:")));
        assert!(line.is_none(), "{target} logged: {}", line.unwrap());
    }

    let state = world.state_dir();
    assert_eq!(mode(&state), 0o700, "the state dir");
    for file in ["session.json", "spool.redb", "lock"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_texts_stay_out_of_an_info_level_log() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    world.fake.echo_sent(true);
    let links = links().await;
    let config = world.config(&links.yaml);

    let run = Run::start(&config, "info");
    world.scan_and_confirm().await;
    world.fake.queue(Msg::text(&alice, PING));
    world.fake.queue(Msg::text(&alice, "the door code is 4711"));
    links
        .hook
        .wait_for(&[PING, "the door code is 4711", REPLY])
        .await;
    world.fake.wait_sent(1, WAIT).await;
    let secrets = [session_secrets(&world), config_secrets()].concat();
    let log = run.stop().await;

    assert!(log.contains("INFO"), "the run logged at info level:\n{log}");
    let texts: Vec<(String, String)> = [PING, REPLY, "the door code is 4711"]
        .into_iter()
        .map(|t| ("message text".to_owned(), t.to_owned()))
        .collect();
    assert_absent("an info-level run", &log, &texts);
    assert_absent("an info-level run", &log, &secrets);
}

#[tokio::test]
async fn check_config_masks_every_secret() {
    let world = World::new().await;
    let yaml = format!(
        "mqtt:\n  url: mqtts://127.0.0.1:8883\n  password: {MQTT_PASSWORD}\n\
         nats:\n  url: tls://127.0.0.1:4222\n  user: bridge\n  password: {NATS_TOKEN}\n\
         webhooks:\n  - url: https://127.0.0.1:8443/hook\n    secret: {WEBHOOK_SECRET}\n\
         http:\n  listen: 127.0.0.1:0\n  token: {HTTP_TOKEN}\n"
    );
    let config = world.config(&yaml);
    let out = Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .arg("--config")
        .arg(&config)
        .arg("check-config")
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("***"),
        "secrets are shown masked:\n{stdout}"
    );
    assert_absent(
        "check-config",
        &format!("{stdout}\n{stderr}"),
        &config_secrets(),
    );
}

/// `send.allow: [Mom]` under the harness's `send:` section.
fn allow_mom(world: &World) -> PathBuf {
    let path = world.config("");
    let yaml = std::fs::read_to_string(&path).unwrap();
    assert!(
        yaml.contains("\nsend:\n"),
        "the harness config has a send section"
    );
    std::fs::write(
        &path,
        yaml.replacen("\nsend:\n", "\nsend:\n  allow: [Mom]\n", 1),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn send_allow_refuses_everyone_else_as_forbidden() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let bob = world.fake.add_contact("Bob", "");
    let mut bridge = Bridge::spawn(&allow_mom(&world), &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    let commands = [
        (
            r#"{"to":"Mom","text":"hi mom","request_id":"a-1"}"#.to_owned(),
            None,
        ),
        (
            r#"{"to":"Bob","text":"hi bob","request_id":"a-2"}"#.to_owned(),
            Some("forbidden"),
        ),
        (
            format!(r#"{{"to_id":"{bob}","text":"hi bob","request_id":"a-3"}}"#),
            Some("forbidden"),
        ),
        (
            r#"{"to":"filehelper","text":"note","request_id":"a-4"}"#.to_owned(),
            Some("forbidden"),
        ),
        (
            format!(r#"{{"to_id":"{alice}","text":"by id","request_id":"a-5"}}"#),
            None,
        ),
    ];
    for (line, refused) in &commands {
        bridge.send_line(line.as_bytes()).await;
        let result = bridge.next_result().await;
        match refused {
            None => assert_eq!(result["ok"], true, "{line}: {result}"),
            Some(code) => {
                assert_eq!(result["ok"], false, "{line}: {result}");
                assert_eq!(result["error"]["code"], *code, "{line}: {result}");
            }
        }
    }
    let sent = world.fake.wait_sent(2, WAIT).await;
    assert!(
        sent.iter().all(|m| m.to == alice),
        "only Mom got messages: {sent:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(world.fake.sent().len(), 2);
}

/// An HTTPS webhook receiver on rustls, a thread per connection: answers 200 to every request
/// (one per connection) and keeps the JSON bodies.
fn https_receiver(dir: &Path) -> (Arc<Mutex<Vec<Value>>>, u16) {
    use std::io::{BufRead, BufReader, Read, Write};

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let (config, kept) = (config.clone(), kept.clone());
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                // A client that refuses the certificate ends the handshake here, with an error.
                let mut length = 0;
                let mut line = String::new();
                while tls.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if line != "\r\n" || tls.read_exact(&mut body).is_err() {
                    return;
                }
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                let mut tls = tls.into_inner();
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (bodies, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhooks_reach_only_a_receiver_whose_certificate_is_trusted() {
    if !tls::have_openssl() {
        return;
    }
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let tls = world.dir.path().join("tls");
    std::fs::create_dir(&tls).unwrap();
    tls::certificates(&tls);
    let (bodies, port) = https_receiver(&tls);
    let config = world.config(&format!(
        "webhooks:\n  - url: https://127.0.0.1:{port}/hook\n    secret: {WEBHOOK_SECRET}\n"
    ));

    // The machine's roots do not include the CA made above: nothing is delivered.
    let run = Run::start(&config, "info");
    world.scan_and_confirm().await;
    world.fake.queue(Msg::text(&alice, "over tls"));
    run.wait_for_line("about the refused certificate", |l| {
        l.contains("webhook") && l.contains("UnknownIssuer")
    })
    .await;
    run.stop().await;
    assert!(
        bodies.lock().unwrap().is_empty(),
        "delivered to an untrusted certificate"
    );

    // Trusting the CA (rustls reads the roots named by SSL_CERT_FILE), the spooled message
    // goes out on the next start, which resumes the stored session.
    let run = Run::start_with(&config, "info", &[("SSL_CERT_FILE", &tls.join("ca.pem"))]);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bodies
        .lock()
        .unwrap()
        .iter()
        .any(|b| b["text"] == "over tls")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered over TLS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.stop().await;
}
