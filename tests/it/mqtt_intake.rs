//! What comes in over the MQTT link, under pressure, against a real mosquitto: a QoS 0 flood
//! behind a slow bridge stays bounded while QoS 1 commands all arrive.
use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::Value;
use wxbridge::event::{ErrorCode, SendResult};
use wxbridge::sinks::Accepted;

use crate::brokers;
use crate::mqtt::{start, until_connected, until_online};
use crate::watch::Watcher;

const WAIT: Duration = Duration::from_secs(20);

/// Answers a command as the bridge does when it refuses one.
fn refuse(cmd: &mut wxbridge::sinks::IncomingCommand) {
    let result = SendResult::err(None, ErrorCode::InvalidCommand, "refused by the test");
    let _ = cmd
        .accepted
        .take()
        .expect("an answer is owed")
        .send(Accepted::Answered(result));
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
