//! The MQTT link against a real mosquitto: topics and order, PUBACK-confirmed delivery, the
//! retained status/state/QR, commands acked only once the bridge has them, relogin, the last
//! will, and delivery across a broker that is down at start, restarted mid-batch, or cut off.
//! The sink is driven by hand, as `run_delivery` would, with a hand-built `Control`; a small
//! TCP gate between link and broker can hold the broker's answers or cut the connection.
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use time::macros::datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wxbridge::config::{HomeAssistantConfig, MqttConfig};
use wxbridge::event::{LoginQr, SessionState};
use wxbridge::sinks::mqtt::{self, MqttSink};
use wxbridge::sinks::{Accepted, Control, Origin, Sink};
use wxbridge::spool::{Entry, Kind};

use crate::brokers;
use crate::control::{control, deliver_all, entry, status, Side as Bridge};
use crate::tls;
use crate::watch::Watcher;

const WAIT: Duration = Duration::from_secs(10);

/// `send.max_bytes` of the links these tests start: the default, which
/// [`crate::control::account`] keeps.
pub const MAX_BYTES: usize = 65536;

/// A link for account `home` on the broker at `port`, with Home Assistant discovery on.
pub fn start(port: u16) -> (MqttSink, Bridge) {
    let (control, bridge) = control(SessionState::Starting, Duration::from_millis(500));
    let config = MqttConfig {
        url: format!("mqtt://127.0.0.1:{port}").parse().unwrap(),
        client_id: "wxbridge-home".to_owned(),
        ..MqttConfig::default()
    };
    (
        start_link(&config, &HomeAssistantConfig::default(), control),
        bridge,
    )
}

/// Prepares and starts the link of `control`'s account, as `run` does.
pub fn start_link(
    config: &MqttConfig,
    homeassistant: &HomeAssistantConfig,
    control: Control,
) -> MqttSink {
    mqtt::prepare(
        config,
        homeassistant,
        &[crate::control::account(&control.account)],
    )
    .unwrap()
    .start(vec![control], &TaskTracker::new())
    .pop()
    .unwrap()
    .sink
}

pub async fn until_connected(sink: &MqttSink) {
    let mut link = sink.link();
    tokio::time::timeout(WAIT, link.wait_for(|s| s.connected))
        .await
        .expect("connected in time")
        .unwrap();
}

/// Waits until the link has said `online`: it subscribes to its command topics just before,
/// on the same connection, so a command published now reaches it.
pub async fn until_online(port: u16) {
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let id = format!("probe-{}", PROBES.fetch_add(1, Ordering::Relaxed));
    let mut probe = Watcher::new(port, &id, "wechat/home/status").await;
    while &probe.next().await.payload[..] != b"online" {}
}

fn messages(n: u64, pad: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            payload: serde_json::to_vec(
                &json!({"kind": "message", "id": i, "pad": "x".repeat(pad)}),
            )
            .unwrap(),
            ..entry(i, Kind::Message, &i.to_string())
        })
        .collect()
}

/// The message ids the watcher has received so far (`{"id": n}` payloads), waiting until
/// `want` are all there.
async fn until_ids(w: &mut Watcher, seen: &mut BTreeSet<u64>, want: impl Iterator<Item = u64>) {
    let want: BTreeSet<u64> = want.collect();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !want.is_subset(seen) {
            let m = w.next().await;
            if !m.topic.ends_with("/message") {
                continue;
            }
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            seen.insert(v["id"].as_u64().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("missing {:?}", want.difference(seen).collect::<Vec<_>>()));
}

/// A TCP relay between the link and the broker that can hold the broker's answers (PUBACKs,
/// PINGRESPs) or cut every connection without a DISCONNECT.
pub struct Gate {
    pub port: u16,
    hold: watch::Sender<bool>,
    cut: Arc<Mutex<CancellationToken>>,
    task: JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
        self.cut.lock().unwrap().cancel();
    }
}

impl Gate {
    pub async fn new(upstream: u16) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hold, held) = watch::channel(false);
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let cuts = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let token = cuts.lock().unwrap().clone();
                tokio::spawn(relay(down, up, held.clone(), token));
            }
        });
        Gate {
            port,
            hold,
            cut,
            task,
        }
    }

    pub fn hold(&self, on: bool) {
        self.hold.send_replace(on);
    }

    pub fn cut(&self) {
        let mut token = self.cut.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
        self.hold(false);
    }
}

async fn relay(
    down: TcpStream,
    up: TcpStream,
    mut held: watch::Receiver<bool>,
    cut: CancellationToken,
) {
    let (mut down_r, mut down_w) = down.into_split();
    let (mut up_r, mut up_w) = up.into_split();
    let to_broker = tokio::io::copy(&mut down_r, &mut up_w);
    let to_link = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = up_r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let _ = held.wait_for(|h| !*h).await;
            down_w.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        biased;
        _ = cut.cancelled() => {}
        _ = to_broker => {}
        _ = to_link => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_land_on_their_kind_topics_in_order_and_count_only_once_acked() {
    let broker = brokers::mosquitto();
    let gate = Gate::new(broker.port).await;
    let (mut sink, _bridge) = start(gate.port);
    until_connected(&sink).await;
    let mut w = Watcher::new(broker.port, "watcher", "wechat/home/#").await;
    // The retained announcements arrive first; they are another test's business.
    w.drain(Duration::from_millis(300)).await;

    let batch = [
        entry(1, Kind::Message, "m1"),
        entry(2, Kind::Login, "l1"),
        entry(3, Kind::Logout, "o1"),
        entry(4, Kind::Contacts, "c1"),
        entry(5, Kind::Error, "e1"),
        entry(6, Kind::Result, "r1"),
        entry(7, Kind::Message, "m2"),
    ];
    gate.hold(true);
    let delivery = tokio::spawn(async move {
        let r = sink.deliver(&batch).await;
        (r, sink)
    });
    let mut got = Vec::new();
    while got.len() < 7 {
        got.push(w.next().await);
    }
    // The broker has every entry, but its PUBACKs are held: not delivered yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !delivery.is_finished(),
        "deliver returned before the PUBACKs"
    );
    gate.hold(false);
    let (result, _sink) = tokio::time::timeout(WAIT, delivery).await.unwrap().unwrap();
    result.unwrap();

    let topics: Vec<_> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "wechat/home/message",
            "wechat/home/event",
            "wechat/home/event",
            "wechat/home/event",
            "wechat/home/event",
            "wechat/home/send/result",
            "wechat/home/message",
        ]
    );
    let ids: Vec<_> = got
        .iter()
        .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, ["m1", "l1", "o1", "c1", "e1", "r1", "m2"]);
    assert!(got.iter().all(|m| !m.retain));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_goes_out_before_the_first_is_acked_and_both_are_confirmed_in_order() {
    let broker = brokers::mosquitto();
    let gate = Gate::new(broker.port).await;
    let (mut sink, _bridge) = start(gate.port);
    until_connected(&sink).await;
    let mut w = Watcher::new(broker.port, "watcher", "wechat/home/message").await;

    gate.hold(true);
    let first: Vec<Entry> = (1..=3)
        .map(|i| entry(i, Kind::Message, &format!("m{i}")))
        .collect();
    let second: Vec<Entry> = (4..=5)
        .map(|i| entry(i, Kind::Message, &format!("m{i}")))
        .collect();
    // Neither submit waits for acks: the second goes out while the first's are held.
    for batch in [first, second] {
        let acked = tokio::time::timeout(WAIT, sink.submit(batch))
            .await
            .expect("submit does not wait for the acks");
        assert_eq!(acked.unwrap(), 0, "nothing acked yet");
    }
    let mut ids = Vec::new();
    while ids.len() < 5 {
        let m = w.next().await;
        ids.push(serde_json::from_slice::<Value>(&m.payload).unwrap()["id"].clone());
    }
    assert_eq!(
        ids,
        ["m1", "m2", "m3", "m4", "m5"],
        "both batches published, in order"
    );

    gate.hold(false);
    let mut confirmed = 0;
    while confirmed < 5 {
        confirmed += tokio::time::timeout(WAIT, sink.confirmed())
            .await
            .expect("the acks arrive")
            .unwrap();
    }
    assert_eq!(
        confirmed, 5,
        "every entry of both batches confirmed, none twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_state_and_qr_are_retained_and_the_qr_is_cleared_after_login() {
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "watcher", "wechat/home/#").await;
    let (sink, bridge) = start(broker.port);
    let stopped = sink.stopped();

    // The announcement after the ConnAck: online, the state, and no QR yet.
    let got = w
        .each_of("wechat/home/", &["status", "state", "qr", "qr/png"])
        .await;
    assert_eq!(&got["status"][..], b"online");
    let v: Value = serde_json::from_slice(&got["state"]).unwrap();
    assert_eq!(
        v,
        json!({"state": "starting", "since": "2026-11-28T16:20:01Z", "reason": ""})
    );
    assert!(got["qr"].is_empty() && got["qr/png"].is_empty());

    let png = vec![0x89, b'P', b'N', b'G', 0, 1, 2, 255];
    bridge.qr.send_replace(Some(LoginQr {
        url: "https://login.weixin.qq.com/l/abc".into(),
        png: png.clone(),
        expires_at: datetime!(2026-11-28 16:25:01 UTC),
    }));
    bridge
        .status
        .send_replace(status(SessionState::LoginRequired, "scan the QR"));
    let got = w.each_of("wechat/home/", &["state", "qr", "qr/png"]).await;
    let v: Value = serde_json::from_slice(&got["qr"]).unwrap();
    assert_eq!(v["url"], "https://login.weixin.qq.com/l/abc");
    assert_eq!(v["expires_at"], "2026-11-28T16:25:01Z");
    assert_eq!(v["png_base64"], "iVBORwABAv8=");
    assert_eq!(&got["qr/png"][..], &png[..], "the PNG bytes round-trip");
    let v: Value = serde_json::from_slice(&got["state"]).unwrap();
    assert_eq!(v["state"], "login_required");
    assert_eq!(v["reason"], "scan the QR");

    // A late subscriber gets all of it retained.
    let mut late = Watcher::new(broker.port, "late", "wechat/home/#").await;
    let retained = late.drain(Duration::from_millis(400)).await;
    let mut topics: Vec<_> = retained
        .iter()
        .filter(|m| m.retain)
        .map(|m| m.topic.as_str())
        .collect();
    topics.sort();
    assert_eq!(
        topics,
        [
            // `[]` while logged out.
            "wechat/home/contacts",
            // Home Assistant's copy of the PNG (discovery is on), never emptied.
            "wechat/home/homeassistant/login_qr",
            "wechat/home/qr",
            "wechat/home/qr/png",
            "wechat/home/state",
            "wechat/home/status"
        ]
    );

    bridge.qr.send_replace(None);
    let got = w.each_of("wechat/home/", &["qr", "qr/png"]).await;
    assert!(got["qr"].is_empty() && got["qr/png"].is_empty());
    let mut after = Watcher::new(broker.port, "after", "wechat/home/#").await;
    let retained = after.drain(Duration::from_millis(400)).await;
    assert!(
        retained
            .iter()
            .all(|m| !m.topic.starts_with("wechat/home/qr")),
        "the QR is no longer retained: {retained:?}"
    );

    // Shutdown says offline, retained, and the link stops.
    bridge.shutdown.cancel();
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("stopped in time");
    let offline = w.next_on("wechat/home/status").await;
    assert_eq!(&offline.payload[..], b"offline");
    let mut last = Watcher::new(broker.port, "last", "wechat/home/status").await;
    assert_eq!(&last.next().await.payload[..], b"offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_command_is_acked_only_once_the_bridge_has_it() {
    let broker = brokers::mosquitto();
    let w = Watcher::new(broker.port, "watcher", "wechat/home/send/result").await;
    let command = br#"{"to":"Mom","text":"on my way","request_id":"r-17"}"#.to_vec();

    // The first run gets the command but stops before the bridge takes it: no ack.
    let (sink, mut bridge) = start(broker.port);
    until_online(broker.port).await;
    w.publish("wechat/home/send", false, command.clone()).await;
    let first = bridge.command().await;
    assert_eq!(first.payload, command);
    assert_eq!(first.origin, Origin::Mqtt);
    let stopped = sink.stopped();
    bridge.shutdown.cancel();
    tokio::time::timeout(WAIT, stopped).await.unwrap();
    drop((sink, bridge, first));

    // The broker hands it to the next run, which acks it once taken.
    let (sink, mut bridge) = start(broker.port);
    let mut again = bridge.command().await;
    assert_eq!(again.payload, command);
    again
        .accepted
        .take()
        .unwrap()
        .send(Accepted::Queued(1))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = sink.stopped();
    bridge.shutdown.cancel();
    tokio::time::timeout(WAIT, stopped).await.unwrap();
    drop((sink, bridge));

    // Acked: a third run does not see it.
    let (sink, mut bridge) = start(broker.port);
    until_connected(&sink).await;
    let extra = tokio::time::timeout(Duration::from_millis(700), bridge.commands.recv()).await;
    assert!(extra.is_err(), "an acked command came back: {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relogin_notifies_the_bridge_but_a_retained_one_is_ignored() {
    let broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "watcher", "wechat/home/relogin").await;
    // Retained, it would fire again at every reconnect: repeated logins get accounts banned.
    w.publish("wechat/home/relogin", true, b"stale".to_vec())
        .await;
    // Stored at the broker before the link subscribes: published later, it would reach the
    // link as a live (not retained) request.
    assert_eq!(&w.next().await.payload[..], b"stale");
    let (_sink, bridge) = start(broker.port);
    until_online(broker.port).await;
    let stale = tokio::time::timeout(Duration::from_millis(500), bridge.relogin.notified()).await;
    assert!(stale.is_err(), "a retained relogin fired");

    let notified = bridge.relogin.notified();
    w.publish("wechat/home/relogin", false, b"please".to_vec())
        .await;
    tokio::time::timeout(WAIT, notified)
        .await
        .expect("relogin notified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_command_arrives_cut_to_max_bytes_and_the_connection_stays_up() {
    let broker = brokers::mosquitto();
    let w = Watcher::new(broker.port, "watcher", "wechat/home/message").await;
    let (mut sink, mut bridge) = start(broker.port);
    until_online(broker.port).await;
    let before = *sink.link().borrow();

    let big = vec![b'x'; 1024 * 1024];
    w.publish("wechat/home/send", false, big.clone()).await;
    let mut cmd = bridge.command().await;
    // One byte past `send.max_bytes` is all the size check needs.
    assert_eq!(cmd.payload, big[..MAX_BYTES + 1]);
    cmd.accepted
        .take()
        .unwrap()
        .send(Accepted::Queued(2))
        .unwrap();

    let mut w = w;
    deliver_all(
        &mut sink,
        &[entry(1, Kind::Message, "after")],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        &w.next().await.payload[..],
        &entry(1, Kind::Message, "after").payload[..]
    );
    let after = *sink.link().borrow();
    assert_eq!(after.connects, before.connects, "no reconnect");
    assert!(after.connected);
    assert_eq!(after.too_large, before.too_large + 1, "counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_at_start_is_used_once_it_comes_up() {
    let mut broker = brokers::mosquitto();
    let mut w = Watcher::new(broker.port, "watcher", "wechat/home/message").await;
    broker.stop();
    let (mut sink, _bridge) = start(broker.port);
    let batch = messages(5, 0);
    let delivery = tokio::spawn(async move {
        deliver_all(&mut sink, &batch, Duration::from_secs(20)).await;
        sink
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!delivery.is_finished());
    broker.start();
    let sink = tokio::time::timeout(WAIT, delivery).await.unwrap().unwrap();
    assert!(sink.link().borrow().connected);
    let mut seen = BTreeSet::new();
    until_ids(&mut w, &mut seen, 0..5).await;
}

/// Restarts the broker in the middle of a 4,000-entry batch (`forget`: with its persistence
/// deleted in between, so it no longer knows the bridge's session), then retries what failed
/// as the spool would. Answers what the batch's delivery said. Unless `forget`, checks that
/// every entry arrived (wiping the broker's state also wipes the watcher's session and what
/// was queued for it, so then only the bridge's side can be checked).
async fn restart_mid_batch(forget: bool) -> Result<(), wxbridge::sinks::DeliveryError> {
    let mut broker = brokers::mosquitto();
    let gate = Gate::new(broker.port).await;
    let mut w = Watcher::new(broker.port, "watcher", "wechat/home/message").await;
    let (mut sink, _bridge) = start(gate.port);
    until_connected(&sink).await;
    let batch = messages(4000, 2048);

    // The broker's PUBACKs are held, so the whole batch is in flight when the broker stops.
    gate.hold(true);
    let first = {
        let batch = batch.clone();
        tokio::spawn(async move {
            let r = sink.deliver(&batch).await;
            (r, sink)
        })
    };
    let mut seen = BTreeSet::new();
    until_ids(&mut w, &mut seen, 0..50).await;
    broker.stop();
    // The held PUBACKs go with the connections: nothing of the batch is confirmed.
    gate.cut();
    if forget {
        std::fs::remove_file(broker.dir.path().join("mosquitto.db")).unwrap();
    }
    broker.start();
    let (result, mut sink) = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    let delivered = match &result {
        Ok(()) => batch.len(),
        Err(e) => e.delivered,
    };

    if forget {
        deliver_all(&mut sink, &batch[delivered..], Duration::from_secs(20)).await;
        return result;
    }
    // What the link counted as delivered, the broker had: the watcher gets all of it.
    until_ids(&mut w, &mut seen, 0..delivered as u64).await;
    // The rest, retried as the spool would, fills every gap.
    deliver_all(&mut sink, &batch[delivered..], Duration::from_secs(20)).await;
    until_ids(&mut w, &mut seen, 0..batch.len() as u64).await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_that_keeps_the_session_finishes_the_batch_without_publishing_again() {
    // rumqttc sends the unacked publishes again on the resumed session; the sink waits for
    // their PUBACKs instead of failing the batch.
    restart_mid_batch(false)
        .await
        .expect("the resumed session finishes the batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_that_loses_the_session_fails_the_batch_at_once_and_a_retry_completes() {
    // Waiting for resends that will never come would take the sink's 30 s progress limit;
    // the delivery is awaited for 10 s.
    let e = restart_mid_batch(true)
        .await
        .expect_err("the unacked publishes died with the session");
    assert_eq!(e.delivered, 0, "no PUBACK came through before the restart");
    assert!(e.cause.contains("new session"), "{}", e.cause);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_fires_the_will_and_the_resumed_session_finishes_the_batch() {
    let broker = brokers::mosquitto();
    let gate = Gate::new(broker.port).await;
    let mut w = Watcher::new(broker.port, "watcher", "wechat/home/status").await;
    let mut on_message = Watcher::new(broker.port, "counter", "wechat/home/message").await;
    let (mut sink, _bridge) = start(gate.port);
    until_connected(&sink).await;
    assert_eq!(
        &w.next_on("wechat/home/status").await.payload[..],
        b"online"
    );

    let batch = messages(5, 0);
    gate.hold(true);
    let first = tokio::spawn(async move {
        let r = sink.deliver(&batch).await;
        (r, sink)
    });
    // The broker got the publishes, but no PUBACK reaches the link before the cut.
    let mut seen = BTreeSet::new();
    until_ids(&mut on_message, &mut seen, 0..5).await;
    gate.cut();

    let will = w.next_on("wechat/home/status").await;
    assert_eq!(&will.payload[..], b"offline", "the last will");
    let back = w.next_on("wechat/home/status").await;
    assert_eq!(&back.payload[..], b"online");
    let (result, sink) = tokio::time::timeout(WAIT, first).await.unwrap().unwrap();
    result.expect("rumqttc's resends on the resumed session are acked");
    assert!(sink.link().borrow().connects >= 2);

    // Each entry came once before the cut and at most once more (rumqttc's resend, which the
    // broker passes on at QoS 1); the sink did not publish it a third time.
    let mut copies: HashMap<u64, usize> = (0..5).map(|i| (i, 1)).collect();
    for m in on_message.drain(Duration::from_millis(500)).await {
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        *copies.entry(v["id"].as_u64().unwrap()).or_default() += 1;
    }
    assert!(
        copies.values().all(|&n| n <= 2),
        "copies per entry: {copies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_private_ca_and_a_client_certificate_delivers() {
    if !tls::have_openssl() {
        return;
    }
    let mut broker = brokers::mosquitto();
    let dir = broker.dir.path().to_path_buf();
    tls::certificates(&dir);
    // The TLS listener on the harness's port, requiring a client certificate; a plain one for
    // the watcher.
    let plain = brokers::free_port();
    let conf = format!(
        "per_listener_settings false\nallow_anonymous true\nuser root\n\
         persistence true\npersistence_location {d}/\n\
         listener {tls} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n\
         require_certificate true\n\
         listener {plain} 127.0.0.1\n",
        d = dir.display(),
        tls = broker.port,
    );
    broker.stop();
    std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    broker.start();

    let mut w = Watcher::new(plain, "watcher", "wechat/home/message").await;
    let (control, _bridge) = control(SessionState::Starting, Duration::from_millis(500));
    let config = MqttConfig {
        url: format!("mqtts://127.0.0.1:{}", broker.port)
            .parse()
            .unwrap(),
        client_id: "wxbridge-home".to_owned(),
        ca_file: Some(dir.join("ca.pem")),
        cert_file: Some(dir.join("client.pem")),
        key_file: Some(dir.join("client.key")),
        ..MqttConfig::default()
    };
    let mut sink = start_link(&config, &HomeAssistantConfig::default(), control);
    deliver_all(&mut sink, &messages(3, 0), Duration::from_secs(20)).await;
    let mut seen = BTreeSet::new();
    until_ids(&mut w, &mut seen, 0..3).await;
}
