//! Fault injection, end to end: the `wxbridge` binary with real mosquitto and nats-server and
//! the fake WeChat, while a broker restarts, the webhook fails, WeChat misbehaves, the bridge
//! is killed, or the send topic is flooded.
//!
//! Every test counts per sink (DESIGN.md "Delivery guarantees"): no gaps (every injected
//! message arrives), spool order (the sequence of first arrivals is exactly the injected
//! order), and duplicates only as allowed: an identical repeat of an event already seen, which
//! only a crash or a lost acknowledgement can cause. Duplicates are counted and printed.
//!
//! Brokers are stopped with SIGTERM and subscribers keep persistent sessions (MQTT
//! clean_session false, a durable JetStream consumer): a broker killed with SIGKILL loses what
//! it had already acknowledged, which no client can prevent.
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use wxbridge_fake::{Fault, Msg, Options};

use crate::brokers::{self, Broker};
use crate::support::{Bridge, World, WAIT};
use crate::watch::Watcher;

mod feeds;

use feeds::{jetstream_feed, mqtt_feed, Answer, Hook};

/// The most entries a sink can have in flight, so the most distinct events it can repeat
/// after a lost connection: one batch for a sink that stops and waits (webhooks, NATS), two
/// for MQTT, which pipelines. (An MQTT event may come more than twice: rumqttc resends its
/// unacked publishes on a resumed session, and the sink publishes them again.)
fn in_flight(sink: &str) -> usize {
    if sink == "mqtt" {
        wxbridge::sinks::WINDOW
    } else {
        wxbridge::sinks::BATCH
    }
}

/// The most distinct events a sink can repeat after a crash: what it had in flight, and at
/// most one more flight of delivered events whose cursor move the spool's writer still held
/// for its next commit (`spool::Store::ack`).
fn after_crash(sink: &str) -> usize {
    in_flight(sink) + wxbridge::sinks::WINDOW
}
/// How long a broker stays down.
const DOWNTIME: Duration = Duration::from_secs(5);

/// Queues messages `range` of a burst from `from`; answers their MsgIds in queue order.
fn burst(world: &World, from: &str, range: Range<usize>) -> Vec<String> {
    range
        .map(|i| {
            world
                .fake
                .queue(Msg::text(from, &format!("burst {i}")))
                .msg_id
        })
        .collect()
}

/// Stops a broker (SIGTERM) off the runtime's threads.
async fn stop(broker: Broker) -> Broker {
    tokio::task::spawn_blocking(move || {
        let mut broker = broker;
        broker.stop();
        broker
    })
    .await
    .unwrap()
}

/// Starts a stopped broker again off the runtime's threads.
async fn start(broker: Broker) -> Broker {
    tokio::task::spawn_blocking(move || {
        let mut broker = broker;
        broker.start();
        broker
    })
    .await
    .unwrap()
}

fn mqtt_config(broker: &Broker) -> String {
    format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-test\n",
        broker.port
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mosquitto_restart_mid_burst_loses_nothing_and_keeps_order() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mqtt = brokers::mosquitto();
    let subscriber = Watcher::new(mqtt.port, "faults-sub", "wechat/test/message").await;
    let mut feed = mqtt_feed(subscriber, "mqtt");
    let config = world.config(&mqtt_config(&mqtt));
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;

    let mut injected = burst(&world, &alice, 0..400);
    feed.at_least(100).await;
    let mqtt = stop(mqtt).await;
    feed.take_ready();
    eprintln!("mqtt: stopped after {} arrivals", feed.arrivals.distinct());
    injected.extend(burst(&world, &alice, 400..700));
    tokio::time::sleep(DOWNTIME).await;
    let _mqtt = start(mqtt).await;
    injected.extend(burst(&world, &alice, 700..1000));

    let repeated = feed.complete(&injected).await;
    assert!(
        repeated <= in_flight(feed.sink),
        "repeats only from the deliveries in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_mid_burst_loses_nothing_on_jetstream() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let nats = brokers::nats_server();
    let config = world.config(&format!(
        "nats:\n  url: nats://127.0.0.1:{}\n  jetstream: true\n",
        nats.port
    ));
    let nc = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let mut core = nc.subscribe("wechat.test.message").await.unwrap();
    let (core_tx, mut core_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = core.next().await {
            let _ = core_tx.send(m.payload);
        }
    });
    let _bridge = Bridge::spawn(&config, &["run"]);
    let mut feed = jetstream_feed(nc.clone()).await;
    world.scan_and_confirm().await;

    let mut injected = burst(&world, &alice, 0..400);
    feed.at_least(100).await;
    let nats = stop(nats).await;
    feed.take_ready();
    eprintln!(
        "jetstream: stopped after {} arrivals",
        feed.arrivals.distinct()
    );
    injected.extend(burst(&world, &alice, 400..700));
    tokio::time::sleep(DOWNTIME).await;
    let _nats = start(nats).await;
    injected.extend(burst(&world, &alice, 700..1000));

    let repeated = feed.complete(&injected).await;
    assert!(
        repeated <= in_flight(feed.sink),
        "repeats only from the deliveries in flight"
    );

    // Core NATS is best effort past the server (DESIGN.md): what the plain subscriber missed
    // while it was disconnected is reported, not asserted.
    let mut core_ids = HashSet::new();
    while let Ok(p) = core_rx.try_recv() {
        let v: Value = serde_json::from_slice(&p).unwrap();
        core_ids.insert(v["id"].as_str().unwrap_or_default().to_owned());
    }
    let missed = injected.iter().filter(|id| !core_ids.contains(*id)).count();
    eprintln!(
        "core nats: the subscriber got {} of {} messages, missed {missed}",
        injected.len() - missed,
        injected.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_failing_then_timing_out_then_recovering_gets_every_message_in_order() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let (hook, url, mut feed) = Hook::start().await;
    let config = world.config(&Hook::config(&url));
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;

    let mut injected = burst(&world, &alice, 0..500);
    feed.at_least(100).await;
    hook.set(Answer::Error);
    injected.extend(burst(&world, &alice, 500..1000));
    tokio::time::sleep(Duration::from_secs(30)).await;
    hook.set(Answer::Hang);
    tokio::time::sleep(Duration::from_secs(5)).await;
    hook.set(Answer::Ok);

    let (errors, hangs) = (
        hook.errors.load(Ordering::SeqCst),
        hook.hangs.load(Ordering::SeqCst),
    );
    eprintln!("webhook: answered 500 {errors} times, hung {hangs} times");
    assert!(errors > 10 && hangs > 1, "both faults were met");
    let repeated = feed.complete(&injected).await;
    assert_eq!(repeated, 0, "an unanswered or refused POST never counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_errors_garbage_slowness_and_an_expired_session_mid_burst_lose_no_message() {
    let world = World::with(Options {
        push_login: true,
        ..Options::default()
    })
    .await;
    let alice = world.fake.add_contact("Alice", "");
    let (_hook, url, mut feed) = Hook::start().await;
    let config = world.config(&Hook::config(&url));
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;

    let mut injected = burst(&world, &alice, 0..250);
    feed.at_least(50).await;
    for endpoint in ["synccheck", "webwxsync"] {
        world.fake.fault(endpoint, Fault::Status(500), 2);
        world.fake.fault(endpoint, Fault::Garbage, 2);
        world
            .fake
            .fault(endpoint, Fault::Slow(Duration::from_secs(1)), 2);
        world.fake.fault(endpoint, Fault::Status(503), 1);
    }
    injected.extend(burst(&world, &alice, 250..500));
    feed.at_least(300).await;

    // WeChat ends the session mid-burst; what arrives meanwhile waits for the next login.
    world.fake.expire_session(1101);
    injected.extend(burst(&world, &alice, 500..750));
    tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .expect("the bridge asks the phone to confirm a new login");
    world.fake.confirm();
    // Alice's UserName is the new login's from then on (what was queued before is
    // delivered under it).
    world.fake.wait_logins(2, WAIT).await;
    let alice = world.fake.user_name_of("Alice");
    injected.extend(burst(&world, &alice, 750..1000));

    let repeated = feed.complete(&injected).await;
    assert_eq!(world.fake.logins(), 2, "one re-login, by push");
    assert_eq!(repeated, 0, "nothing is spooled twice");
    let syncs = world.fake.requests("webwxsync").len();
    eprintln!("wechat: {syncs} webwxsync calls for 1000 messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_killed_mid_burst_and_restarted_delivers_every_message() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mqtt = brokers::mosquitto();
    let mut on_mqtt = mqtt_feed(
        Watcher::new(mqtt.port, "faults-sub", "wechat/test/message").await,
        "mqtt",
    );
    let (_hook, url, mut on_hook) = Hook::start().await;
    let config = world.config(&format!("{}{}", mqtt_config(&mqtt), Hook::config(&url)));
    let bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;

    let mut injected = burst(&world, &alice, 0..400);
    on_mqtt.at_least(100).await;
    let pid = bridge.pid().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let (code, _) = bridge.exit().await;
    assert_ne!(code, 0, "killed, not stopped");
    on_mqtt.take_ready();
    on_hook.take_ready();
    eprintln!(
        "killed after {} arrivals on mqtt, {} on the webhook",
        on_mqtt.arrivals.distinct(),
        on_hook.arrivals.distinct()
    );
    injected.extend(burst(&world, &alice, 400..700));

    // The same state dir: the stored session resumes without a scan.
    let _bridge = Bridge::spawn(&config, &["run"]);
    injected.extend(burst(&world, &alice, 700..1000));

    for feed in [&mut on_mqtt, &mut on_hook] {
        let repeated = feed.complete(&injected).await;
        assert!(
            repeated <= after_crash(feed.sink),
            "{}: repeats only from the deliveries in flight at the kill and one held flight",
            feed.sink
        );
    }
    assert_eq!(world.fake.logins(), 1, "no new login after the restart");
}

/// The bridge's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// `wxbridge_send_queue_depth` from a `/metrics` page.
fn queue_depth(metrics: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"wxbridge_send_queue_depth{account="test"} "#))
        .and_then(|v| v.trim().parse().ok())
}

/// Flood size, how many valid commands are mixed in, and the size limit the flood runs with.
const BAD: usize = 10_000;
const GOOD: usize = 20;
const MAX_BYTES: usize = 1024;
/// The bridge's peak RSS bound for the flood: measured at 24 MiB (debug build, 10,000 bad
/// and 20 good commands); 64 MiB leaves room for allocator and build differences, and is
/// still far below what a bridge buffering the flood instead of answering it would need.
const PEAK_RSS_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_malformed_commands_gets_each_its_error_and_valid_ones_are_sent_once() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let mqtt = brokers::mosquitto();
    let http_port = brokers::free_port();
    let mut w = Watcher::new(mqtt.port, "faults-flood", "wechat/test/send/result").await;
    let config = world.config(&format!(
        "{}http:\n  listen: 127.0.0.1:{http_port}\n",
        mqtt_config(&mqtt)
    ));
    let max_bytes = MAX_BYTES.to_string();
    let bridge = Bridge::spawn_with_env(
        &config,
        &["run"],
        &[("WXBRIDGE__SEND__MAX_BYTES", &max_bytes)],
    );
    let pid = bridge.pid();
    world.scan_and_confirm().await;

    // Sample the outbound queue depth all through the flood.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{http_port}/metrics");
            let (mut samples, mut max) = (0_usize, 0_f64);
            while sampling.load(Ordering::SeqCst) {
                if let Ok(r) = http.get(&url).send().await {
                    if let Some(d) = queue_depth(&r.text().await.unwrap_or_default()) {
                        samples += 1;
                        max = max.max(d);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (samples, max)
        })
    };

    let oversized = format!(r#"{{"to":"Mom","text":"{}"}}"#, "x".repeat(MAX_BYTES));
    let mut expected_codes: HashMap<&str, usize> = HashMap::new();
    let mut bad_ids = HashSet::new();
    for i in 0..BAD {
        let (payload, code) = match i % 4 {
            0 => (format!("not json {i}").into_bytes(), "invalid_json"),
            1 => (vec![0xff, 0xfe, (i % 251) as u8], "invalid_json"),
            2 => {
                bad_ids.insert(format!("bad-{i}"));
                (
                    format!(r#"{{"to":"Mom","request_id":"bad-{i}"}}"#).into_bytes(),
                    "invalid_command",
                )
            }
            _ => (oversized.clone().into_bytes(), "invalid_command"),
        };
        *expected_codes.entry(code).or_default() += 1;
        w.publish("wechat/test/send", false, payload).await;
        if i % (BAD / GOOD) == BAD / GOOD / 2 {
            let k = i / (BAD / GOOD);
            let good = format!(r#"{{"to":"Mom","text":"valid {k}","request_id":"ok-{k}"}}"#);
            w.publish("wechat/test/send", false, good.into_bytes())
                .await;
        }
    }

    let mut ok_ids: HashMap<String, usize> = HashMap::new();
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut answered_bad: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while total < BAD + GOOD {
        let m = tokio::time::timeout_at(deadline, w.next())
            .await
            .unwrap_or_else(|_| panic!("only {total} results in time: {codes:?}"));
        let r: Value = serde_json::from_slice(&m.payload).unwrap();
        total += 1;
        if r["ok"] == true {
            *ok_ids
                .entry(r["request_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
            continue;
        }
        let code = r["error"]["code"].as_str().unwrap().to_owned();
        if let Some(rid) = r["request_id"].as_str() {
            *answered_bad.entry(rid.to_owned()).or_default() += 1;
        }
        *codes.entry(code).or_default() += 1;
    }
    let late = w.drain(Duration::from_secs(1)).await;
    sampling.store(false, Ordering::SeqCst);
    let (samples, max_depth) = sampler.await.unwrap();
    let peak = peak_rss_kib(pid);
    eprintln!(
        "flood: {total} results; peak RSS {} MiB; outbound queue depth max {max_depth} over {samples} samples",
        peak / 1024
    );

    assert!(
        late.is_empty(),
        "one result per command: {} more",
        late.len()
    );
    let expected: HashMap<String, usize> = expected_codes
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(codes, expected, "every bad command got its error");
    assert!(
        bad_ids.iter().all(|id| answered_bad.get(id) == Some(&1))
            && answered_bad.len() == bad_ids.len(),
        "each bad command with a request_id got exactly one result naming it"
    );
    let want_ok: HashMap<String, usize> = (0..GOOD).map(|k| (format!("ok-{k}"), 1)).collect();
    assert_eq!(ok_ids, want_ok, "every valid command answered ok once");
    let sent = world.fake.wait_sent(GOOD, WAIT).await;
    let mut texts: Vec<&str> = sent.iter().map(|s| s.content.as_str()).collect();
    texts.sort_unstable();
    let mut want: Vec<String> = (0..GOOD).map(|k| format!("valid {k}")).collect();
    want.sort_unstable();
    assert_eq!(texts, want, "each valid command sent exactly once");
    assert!(sent.iter().all(|s| s.to == alice));

    assert!(samples > 0, "/metrics was read during the flood");
    // Only the valid commands ever enter the durable outbound queue; the bad ones are
    // answered at the door.
    assert!(max_depth <= GOOD as f64, "outbound queue depth {max_depth}");
    assert!(peak <= PEAK_RSS_KIB, "peak RSS {peak} KiB over the bound");
}

/// WeChat's next login syncs from after what the last webwxsync handed over (the fake's init
/// does the same), so a batch that was fetched must be spooled even when the session ends
/// before the batch is: here it ends while the bridge looks up the batch's unknown group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_ends_while_unknown_senders_are_looked_up_loses_no_message() {
    let world = World::with(Options {
        push_login: true,
        ..Options::default()
    })
    .await;
    let alice = world.fake.add_contact("Alice", "");
    // Not saved: the bridge learns of it only through webwxbatchgetcontact.
    let club = world.fake.add_group("Club", &[("Bob", "")], false);
    let bob = club.members[0].user_name.clone();
    let (_hook, url, mut feed) = Hook::start().await;
    let config = world.config(&Hook::config(&url));
    let _bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    let mut injected = burst(&world, &alice, 0..1);
    feed.at_least(1).await;

    // webwxsync hands the group's messages over; the session ends while their sender is
    // looked up. The next login's sync starts after what webwxsync handed over.
    let lookups = world.fake.requests("webwxbatchgetcontact").len();
    world.fake.fault(
        "webwxbatchgetcontact",
        Fault::Slow(Duration::from_secs(1)),
        1,
    );
    for i in 0..3 {
        let text = format!("club {i}");
        injected.push(
            world
                .fake
                .queue(Msg::group_text(&club.user_name, &bob, &text))
                .msg_id,
        );
    }
    world
        .fake
        .wait_requests("webwxbatchgetcontact", lookups + 1, WAIT)
        .await;
    world.fake.expire_session(1101);
    tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .expect("the bridge asks the phone to confirm a new login");
    world.fake.confirm();
    world.fake.wait_logins(2, WAIT).await;
    let alice = world.fake.user_name_of("Alice");
    injected.extend(burst(&world, &alice, 1..2));

    let repeated = feed.complete(&injected).await;
    assert_eq!(repeated, 0);
}
