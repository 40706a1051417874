//! What comes in over the MQTT link, under pressure, against a real mosquitto: a QoS 0 flood
//! behind a slow bridge stays bounded while QoS 1 commands all arrive, and publishes past the
//! bridge's own packet limit (a 17 MB command, a 17 MB retained `homeassistant/status`) are
//! consumed without ever breaking the connection, also across a restart of the link.
use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::Value;
use wxbridge::event::{ErrorCode, SendResult};
use wxbridge::sinks::Accepted;

use crate::brokers;
use crate::mqtt::{start, until_connected, until_online, MAX_BYTES};
use crate::watch::Watcher;

const WAIT: Duration = Duration::from_secs(20);

/// Past the bridge's outbound packet limit (16 MiB), as in the reported wedge.
const HUGE: usize = 17 * 1000 * 1000;

/// Answers a command as the bridge does when it refuses one.
fn refuse(cmd: &mut wxbridge::sinks::IncomingCommand) {
    let result = SendResult::err(None, ErrorCode::InvalidCommand, "refused by the test");
    let _ = cmd
        .accepted
        .take()
        .expect("an answer is owed")
        .send(Accepted::Answered(Box::new(result)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos0_flood_behind_a_slow_bridge_stays_bounded_and_every_qos1_command_arrives() {
    const FLOOD: usize = 3000;
    const KEPT: usize = 20;
    let broker = brokers::mosquitto();
    let (sink, mut bridge) = start(broker.port);
    until_connected(&sink).await;
    until_online(broker.port).await;

    // The bridge takes nothing while the flood comes in: it is "slow".
    let publisher = Watcher::new(broker.port, "flooder", "nothing/here").await;
    for i in 0..FLOOD {
        let payload = format!(r#"{{"qos0":{i}}}"#).into_bytes();
        publisher
            .publish_qos("wechat/home/send", QoS::AtMostOnce, false, payload)
            .await;
        if i % (FLOOD / KEPT) == 0 {
            let payload = format!(r#"{{"qos1":{}}}"#, i / (FLOOD / KEPT)).into_bytes();
            publisher
                .publish_qos("wechat/home/send", QoS::AtLeastOnce, false, payload)
                .await;
        }
    }

    // Until the whole flood has reached the link: what it could not queue it counts.
    let link = sink.link();
    let mut last = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let dropped = link.borrow().dropped;
        if dropped > 0 && dropped == last {
            break;
        }
        last = dropped;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flood is still not bounded: {dropped} dropped"
        );
    }

    // Now the bridge catches up.
    let mut qos0 = 0;
    let mut qos1: BTreeMap<u64, usize> = BTreeMap::new();
    while let Ok(Some(mut cmd)) =
        tokio::time::timeout(Duration::from_secs(2), bridge.commands.recv()).await
    {
        refuse(&mut cmd);
        let v: Value = serde_json::from_slice(&cmd.payload).unwrap();
        if let Some(k) = v["qos1"].as_u64() {
            *qos1.entry(k).or_default() += 1;
        } else {
            qos0 += 1;
        }
    }
    let state = *link.borrow();
    eprintln!(
        "flood of {FLOOD}: {qos0} QoS 0 commands taken, {} dropped",
        state.dropped
    );
    assert_eq!(
        qos1,
        (0..KEPT as u64).map(|k| (k, 1)).collect::<BTreeMap<_, _>>(),
        "every QoS 1 command arrives once"
    );
    // What waited: the poller's queue of QoS 0 commands (64) and the one command the bridge
    // had been handed; everything else of the flood was dropped and counted.
    assert!(qos0 <= 64 + 1, "{qos0} QoS 0 commands were kept");
    assert_eq!(
        qos0 + state.dropped as usize,
        FLOOD,
        "each one taken or counted"
    );
    assert_eq!(state.connects, 1, "the link stayed up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_command_and_a_huge_retained_birth_topic_never_break_the_link() {
    let broker = brokers::mosquitto();
    let publisher = Watcher::new(broker.port, "publisher", "nothing/here").await;
    // Retained on a topic the link subscribes at every connect (Home Assistant's birth).
    publisher
        .publish("homeassistant/status", true, vec![b'x'; HUGE])
        .await;

    let (sink, mut bridge) = start(broker.port);
    until_connected(&sink).await;
    until_online(broker.port).await;
    let mut huge = br#"{"request_id":"huge-1","to":"Mom","text":""#.to_vec();
    huge.resize(HUGE, b'x');
    huge.extend_from_slice(br#""}"#);
    publisher
        .publish("wechat/home/send", false, huge.clone())
        .await;
    let mut cmd = tokio::time::timeout(WAIT, bridge.commands.recv())
        .await
        .expect("the huge command is handed over")
        .unwrap();
    // Cut to what the bridge's size check needs, its head (and request_id) intact.
    assert_eq!(cmd.payload, huge[..MAX_BYTES + 1]);
    refuse(&mut cmd);

    // The link is still the first connection, and still takes commands.
    publisher
        .publish("wechat/home/send", false, br#"{"after":1}"#.to_vec())
        .await;
    let mut after = tokio::time::timeout(WAIT, bridge.commands.recv())
        .await
        .expect("a command after the huge one")
        .unwrap();
    assert_eq!(after.payload, br#"{"after":1}"#);
    refuse(&mut after);
    let state = *sink.link().borrow();
    assert_eq!(state.connects, 1, "no reconnect");
    assert!(state.connected);
    assert_eq!(
        state.too_large, 2,
        "the command and the retained birth, counted"
    );

    // A restart of the link (same client id, persistent session): the retained birth topic
    // comes again and is ignored again; the commands were acked and do not.
    tokio::time::sleep(Duration::from_millis(300)).await; // the acks go out
    let stopped = sink.stopped();
    bridge.shutdown.cancel();
    tokio::time::timeout(WAIT, stopped).await.unwrap();
    drop((sink, bridge));
    let (sink, mut bridge) = start(broker.port);
    until_connected(&sink).await;
    until_online(broker.port).await;
    let again = tokio::time::timeout(Duration::from_millis(700), bridge.commands.recv()).await;
    if let Ok(Some(cmd)) = again {
        let head = String::from_utf8_lossy(&cmd.payload[..cmd.payload.len().min(40)]).into_owned();
        panic!("an acked command came back: {head}");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while sink.link().borrow().too_large == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retained birth topic arrives"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let state = *sink.link().borrow();
    assert_eq!(state.connects, 1, "no reconnect after the restart either");
    assert!(state.connected);
}
