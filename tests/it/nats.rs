//! The NATS link against a real `nats-server -js`: subjects, JetStream acks and duplicates,
//! request-reply for send commands, state and QR requests, relogin, and delivery across a
//! server that is down at start or restarted mid-stream. The sink is driven by hand, as
//! `run_delivery` would, with a hand-built `Control`.
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;
use time::macros::datetime;
use tokio_util::task::TaskTracker;
use wxbridge::config::NatsConfig;
use wxbridge::event::{LoginQr, SessionState};
use wxbridge::sinks::nats::{self, NatsSink};
use wxbridge::sinks::{Accepted, Control, Origin, Sink};
use wxbridge::spool::{Entry, Kind};

use crate::brokers::{self, Broker};
use crate::control::{control, deliver_all, entry, status, Side as Bridge};

const WAIT: Duration = Duration::from_secs(10);

fn config(port: u16, jetstream: bool) -> NatsConfig {
    NatsConfig {
        url: format!("nats://127.0.0.1:{port}").parse().unwrap(),
        jetstream,
        ..NatsConfig::default()
    }
}

async fn start(port: u16, jetstream: bool) -> (NatsSink, Bridge) {
    let (control, bridge) = control(SessionState::Starting, Duration::from_millis(300));
    (start_link(&config(port, jetstream), control).await, bridge)
}

/// Prepares and starts the link of `control`'s account, as `run` does.
async fn start_link(config: &NatsConfig, control: Control) -> NatsSink {
    nats::prepare(config, &[crate::control::account(&control.account)])
        .unwrap()
        .start(vec![control], &TaskTracker::new())
        .await
        .unwrap()
        .remove(0)
        .sink
}

async fn client(broker: &Broker) -> async_nats::Client {
    async_nats::connect(format!("127.0.0.1:{}", broker.port))
        .await
        .unwrap()
}

/// Waits until the link answers `.state.get`: its subscriptions are then in place.
async fn until_subscribed(client: &async_nats::Client) -> Bytes {
    tokio::time::timeout(WAIT, async {
        loop {
            match client.request("wechat.home.state.get", Bytes::new()).await {
                Ok(msg) => return msg.payload,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the link subscribed")
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_events_arrive_on_their_subjects_after_the_flush() {
    let broker = brokers::nats_server();
    let (mut sink, _bridge) = start(broker.port, false).await;
    let watcher = client(&broker).await;
    until_subscribed(&watcher).await;
    let mut sub = watcher.subscribe("wechat.home.>").await.unwrap();
    watcher.flush().await.unwrap();

    let batch = [
        entry(1, Kind::Message, "m1"),
        entry(2, Kind::Login, "l1"),
        entry(3, Kind::Contacts, "c1"),
        entry(4, Kind::Result, "r1"),
    ];
    deliver_all(&mut sink, &batch, WAIT).await;

    let mut got = Vec::new();
    while got.len() < batch.len() {
        got.push(next(&mut sub).await);
    }
    let subjects: Vec<_> = got.iter().map(|m| m.subject.to_string()).collect();
    assert_eq!(
        subjects,
        [
            "wechat.home.message",
            "wechat.home.event",
            "wechat.home.event",
            "wechat.home.send.result"
        ]
    );
    for (msg, entry) in got.iter().zip(&batch) {
        assert_eq!(msg.payload.as_ref(), entry.payload.as_slice());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_stream_has_exactly_the_event_subjects_and_drops_redelivered_ids() {
    let broker = brokers::nats_server();
    let (mut sink, _bridge) = start(broker.port, true).await;
    let batch = [
        entry(1, Kind::Message, "4839201934821"),
        entry(2, Kind::Logout, "e-1"),
        entry(3, Kind::Result, "r-1"),
        entry(4, Kind::Message, "4839201934822"),
    ];
    deliver_all(&mut sink, &batch, WAIT).await;

    let js = jetstream::new(client(&broker).await);
    let mut stream = js.get_stream("WECHAT").await.unwrap();
    let info = stream.info().await.unwrap().clone();
    let mut subjects = info.config.subjects.clone();
    subjects.sort();
    assert_eq!(subjects, ["wechat.home.event", "wechat.home.message"]);
    assert_eq!(info.state.messages, 3, "the result is not in the stream");

    // A crash replay delivers the same ids again: the duplicate window drops them.
    deliver_all(&mut sink, &batch, WAIT).await;
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 3);

    let first = stream.get_raw_message(1).await.unwrap();
    assert_eq!(first.subject.as_str(), "wechat.home.message");
    assert_eq!(first.payload.as_ref(), batch[0].payload.as_slice());
    assert_eq!(
        first.headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some("home:4839201934821")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_request_is_answered_by_its_result_entry_and_on_send_result() {
    let broker = brokers::nats_server();
    let (mut sink, mut bridge) = start(broker.port, true).await;
    let requester = client(&broker).await;
    let mut results = requester
        .subscribe("wechat.home.send.result")
        .await
        .unwrap();
    requester.flush().await.unwrap();
    until_subscribed(&requester).await;

    let command = br#"{"to":"Mom","text":"on my way","request_id":"r-17"}"#;
    let request = tokio::spawn({
        let requester = requester.clone();
        async move {
            requester
                .request("wechat.home.send", Bytes::from_static(command))
                .await
        }
    });

    let cmd = tokio::time::timeout(WAIT, bridge.commands.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cmd.payload, command);
    let Origin::Nats { reply: Some(reply) } = cmd.origin else {
        panic!("a request carries its reply subject: {:?}", cmd.origin);
    };
    cmd.accepted.unwrap().send(Accepted::Queued(1)).unwrap();

    let result = br#"{"kind":"result","request_id":"r-17","ok":true,"msg_id":"2038","to":{"id":"@a81","name":"Alice"}}"#;
    let entry = Entry {
        reply_to: Some(reply),
        payload: result.to_vec(),
        ..entry(7, Kind::Result, "res-1")
    };
    deliver_all(&mut sink, &[entry], WAIT).await;

    let answer = request.await.unwrap().expect("the request is answered");
    assert_eq!(answer.payload.as_ref(), result);
    assert_eq!(next(&mut results).await.payload.as_ref(), result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_qr_requests_answer_the_current_values() {
    let broker = brokers::nats_server();
    let (_sink, bridge) = start(broker.port, false).await;
    let asker = client(&broker).await;

    let state: serde_json::Value = serde_json::from_slice(&until_subscribed(&asker).await).unwrap();
    assert_eq!(
        state,
        json!({"state": "starting", "since": "2026-11-28T16:20:01Z", "reason": ""})
    );
    let none = asker
        .request("wechat.home.qr.get", Bytes::new())
        .await
        .unwrap();
    assert!(none.payload.is_empty(), "no QR: an empty answer");

    bridge
        .status
        .send(status(SessionState::LoginForbidden, "ret 1203"))
        .unwrap();
    let qr = LoginQr {
        url: "https://login.weixin.qq.com/l/abc".to_owned(),
        png: vec![0x89, b'P', b'N', b'G'],
        expires_at: datetime!(2026-11-28 16:25:00 UTC),
    };
    bridge.qr.send(Some(qr.clone())).unwrap();

    let state = asker
        .request("wechat.home.state.get", Bytes::new())
        .await
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.payload).unwrap();
    assert_eq!(state["state"], "login_forbidden");
    assert_eq!(state["reason"], "ret 1203");
    let answer = asker
        .request("wechat.home.qr.get", Bytes::new())
        .await
        .unwrap();
    assert_eq!(answer.payload.as_ref(), qr.to_json().as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_qr_changes_are_published() {
    let broker = brokers::nats_server();
    let (_sink, bridge) = start(broker.port, false).await;
    let watcher = client(&broker).await;
    let mut states = watcher.subscribe("wechat.home.state").await.unwrap();
    let mut qrs = watcher.subscribe("wechat.home.qr").await.unwrap();
    watcher.flush().await.unwrap();
    until_subscribed(&watcher).await;

    bridge
        .status
        .send(status(SessionState::LoginRequired, "session expired"))
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&next(&mut states).await.payload).unwrap();
    assert_eq!(
        state,
        json!({"state": "login_required", "since": "2026-11-28T16:20:01Z", "reason": "session expired"})
    );

    let qr = LoginQr {
        url: "https://login.weixin.qq.com/l/xyz".to_owned(),
        png: vec![1, 2, 3],
        expires_at: datetime!(2026-11-28 16:25:00 UTC),
    };
    bridge.qr.send(Some(qr.clone())).unwrap();
    assert_eq!(
        next(&mut qrs).await.payload.as_ref(),
        qr.to_json().as_slice()
    );
    bridge.qr.send(None).unwrap();
    assert!(
        next(&mut qrs).await.payload.is_empty(),
        "cleared after login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relogin_message_notifies_the_bridge() {
    let broker = brokers::nats_server();
    let (_sink, bridge) = start(broker.port, false).await;
    let user = client(&broker).await;
    until_subscribed(&user).await;

    user.publish("wechat.home.relogin", Bytes::from_static(b"please"))
        .await
        .unwrap();
    user.flush().await.unwrap();
    tokio::time::timeout(WAIT, bridge.relogin.notified())
        .await
        .expect("relogin notified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_is_used_once_it_comes_up() {
    let mut broker = brokers::nats_server();
    broker.stop();
    let (mut sink, _bridge) = start(broker.port, false).await;
    let batch = [entry(1, Kind::Message, "m1")];
    let e = sink.deliver(&batch).await.unwrap_err();
    assert_eq!(e.delivered, 0, "nothing counts while the server is away");

    let mut broker = tokio::task::spawn_blocking(move || {
        broker.start();
        broker
    })
    .await
    .unwrap();
    let watcher = client(&broker).await;
    let mut sub = watcher.subscribe("wechat.home.message").await.unwrap();
    watcher.flush().await.unwrap();
    until_subscribed(&watcher).await;

    deliver_all(&mut sink, &batch, WAIT).await;
    assert_eq!(
        next(&mut sub).await.payload.as_ref(),
        batch[0].payload.as_slice()
    );
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_keeps_every_entry_across_a_server_restart() {
    const N: u64 = 300;
    let broker = brokers::nats_server();
    let (mut sink, _bridge) = start(broker.port, true).await;
    let entries: Vec<Entry> = (1..=N)
        .map(|i| entry(i, Kind::Message, &format!("m{i}")))
        .collect();

    // Deliver in small batches, the way run_delivery does, while the server restarts.
    let driver = tokio::spawn(async move {
        let mut next = 0;
        let mut failures = 0;
        while next < entries.len() {
            let end = (next + 10).min(entries.len());
            match sink.deliver(&entries[next..end]).await {
                Ok(()) => next = end,
                Err(e) => {
                    failures += 1;
                    next += e.delivered;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        failures
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let broker = tokio::task::spawn_blocking(move || {
        let mut broker = broker;
        broker.stop();
        std::thread::sleep(Duration::from_millis(500));
        broker.start();
        broker
    })
    .await
    .unwrap();
    let failures = tokio::time::timeout(Duration::from_secs(20), driver)
        .await
        .unwrap_or_else(|_| panic!("not delivered in time; server log:\n{}", broker.log()))
        .unwrap();
    assert!(failures > 0, "the restart interrupted delivery");

    let js = jetstream::new(client(&broker).await);
    let seen = ids_in_stream(&js).await;
    let missing: Vec<u64> = (1..=N).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "no gaps; {} missing, from {:?}",
        missing.len(),
        missing.first()
    );
}

/// The numbers of the `m<n>` ids a JetStream consumer reads from the stream, read until it
/// has been quiet for a second.
async fn ids_in_stream(js: &jetstream::Context) -> std::collections::BTreeSet<u64> {
    let stream = js.get_stream("WECHAT").await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("check".to_owned()),
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(1), messages.next()).await {
        let msg = msg.unwrap();
        let event: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
        seen.insert(event["id"].as_str().unwrap()[1..].parse::<u64>().unwrap());
    }
    seen
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it, valid until 2126;
/// only for the TLS test below.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBnDCCAUOgAwIBAgIUJuqYvIkIJ9+fUu4nBDfWfNhjU7cwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQd3hicmlkZ2UgdGVzdCBDQTAgFw0yNjExMjgxODMxNDRaGA8y
MTI2MTEwNDE4MzE0NFowGzEZMBcGA1UEAwwQd3hicmlkZ2UgdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABMM8o4O5oNbNPcoJRhiz+QAGxtnFnvf+3hJV
CgWJKcUo11cWJSS52RUDLX5mnI0pZcZAG4otumpwp1Ui7tPXxlOjYzBhMB0GA1Ud
DgQWBBQii9rpeWmiHP+3RZkkShdFirgWVzAfBgNVHSMEGDAWgBQii9rpeWmiHP+3
RZkkShdFirgWVzAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwICBDAKBggq
hkjOPQQDAgNHADBEAiBuGmuR6jgBInPyI2QXVTVW7RmYAm2QEdyTIwU/bhLNJAIg
Op2syJpO1DLOnMZNjDvmYRAEK+FJUcY7BJ/WaTiZ0Ko=
-----END CERTIFICATE-----
";
const TEST_SERVER_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBwTCCAWagAwIBAgIUHizB2QCM214obz22CB0SkLGPinowCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQd3hicmlkZ2UgdGVzdCBDQTAgFw0yNjExMjgxODMxNDRaGA8y
MTI2MTEwNDE4MzE0NFowFDESMBAGA1UEAwwJMTI3LjAuMC4xMFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAEgCqsPirlI2Vn/JgjYaqe/bQVeQm/u6F7RWvRPqrs4dlm
UbKMR2QjWHNHx2HY310vPTD7XCE4Wja5FRbalyMOyKOBjDCBiTAaBgNVHREEEzAR
hwR/AAABgglsb2NhbGhvc3QwCQYDVR0TBAIwADALBgNVHQ8EBAMCB4AwEwYDVR0l
BAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFA6pQjATC4tsYvOo7PUhLMKkg2blMB8G
A1UdIwQYMBaAFCKL2ul5aaIc/7dFmSRKF0WKuBZXMAoGCCqGSM49BAMCA0kAMEYC
IQDnUQpTNCzS6DB/Oyb1ghXPvCNfVsHIDeU3SY5IITNHwQIhAPSiL2RM6dkldx0E
gSYnlAO/RUHfWBwbBHjvWe7uLq2N
-----END CERTIFICATE-----
";
const TEST_SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSfSAqM8X4M/kT7Un
d9tjAnClhv7vZ1gBfgmuA0nJWumhRANCAASAKqw+KuUjZWf8mCNhqp79tBV5Cb+7
oXtFa9E+quzh2WZRsoxHZCNYc0fHYdjfXS89MPtcIThaNrkVFtqXIw7I
-----END PRIVATE KEY-----
";

/// nats-server with TLS only, killed on drop (the shared harness starts plain servers).
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (cert, key) = (
            file("server.pem", TEST_SERVER_CERT),
            file("server.key", TEST_SERVER_KEY),
        );
        file("ca.pem", TEST_CA);
        let port = brokers::free_port();
        let child = std::process::Command::new("/usr/sbin/nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["--tls", "--tlscert", &cert, "--tlskey", &key])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server runs");
        TlsServer { child, port, dir }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_url_with_a_ca_file_connects_and_delivers() {
    let server = TlsServer::start();
    let (trusting, _bridge) = control(SessionState::Starting, Duration::from_millis(300));
    let config = NatsConfig {
        url: format!("tls://127.0.0.1:{}", server.port).parse().unwrap(),
        ca_file: Some(server.dir.path().join("ca.pem")),
        ..NatsConfig::default()
    };
    let mut sink = start_link(&config, trusting).await;
    deliver_all(&mut sink, &[entry(1, Kind::Message, "m1")], WAIT).await;

    // Without the CA the server's certificate is not trusted: the link never comes up.
    let (distrusting, _other) = control(SessionState::Starting, Duration::from_millis(300));
    let untrusted = NatsConfig {
        ca_file: None,
        ..config
    };
    let mut sink = start_link(&untrusted, distrusting).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = sink
        .deliver(&[entry(1, Kind::Message, "m1")])
        .await
        .unwrap_err();
    assert_eq!(e.delivered, 0);
}

#[tokio::test]
async fn prepare_names_the_key_of_an_unusable_file_stream_name_or_subject() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let cases = [
        (
            NatsConfig {
                credentials_file: Some(missing.clone()),
                ..NatsConfig::default()
            },
            "nats.credentials_file",
        ),
        (
            NatsConfig {
                ca_file: Some(missing.clone()),
                ..NatsConfig::default()
            },
            "nats.ca_file",
        ),
        (
            NatsConfig {
                jetstream: true,
                stream: "WE.CHAT".to_owned(),
                ..NatsConfig::default()
            },
            "nats.stream",
        ),
        (
            NatsConfig {
                subject_prefix: "we..chat".to_owned(),
                ..NatsConfig::default()
            },
            "nats.subject_prefix",
        ),
    ];
    for (config, key) in cases {
        let Err(e) = nats::prepare(&config, &[crate::control::account("home")]) else {
            panic!("{key}: refused");
        };
        assert!(e.to_string().contains(key), "{key}: {e}");
    }
}
