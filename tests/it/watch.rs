//! A plain MQTT client for the tests: a persistent session of its own, subscribed on every
//! connect, handing what it receives to the test.
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Large enough for the biggest command the tests publish (17 MB, past the bridge's own
/// 16 MiB packet limit).
const BIG: usize = 32 * 1024 * 1024;
/// How long a watcher waits for one message.
const WAIT: Duration = Duration::from_secs(20);

/// One received publish.
#[derive(Debug)]
pub struct Msg {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// The retain flag.
    pub retain: bool,
}

/// A plain rumqttc client with a persistent session of its own, subscribed to `filter` on
/// every connect; what it receives comes out of `rx`.
pub struct Watcher {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<Msg>,
    task: JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watcher {
    pub async fn new(port: u16, id: &str, filter: &str) -> Watcher {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false)
            .set_max_packet_size(BIG, BIG)
            .set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
        let sub = client.clone();
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        sub.try_subscribe(filter.clone(), QoS::AtLeastOnce).unwrap();
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let _ = tx.send(Msg {
                            topic: p.topic,
                            payload: p.payload,
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(WAIT, subscribed.recv())
            .await
            .expect("subscribed in time");
        Watcher { client, rx, task }
    }

    pub async fn next(&mut self) -> Msg {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a message in time")
            .unwrap()
    }

    /// The next message on `topic`, skipping others.
    pub async fn next_on(&mut self, topic: &str) -> Msg {
        loop {
            let m = self.next().await;
            if m.topic == topic {
                return m;
            }
        }
    }

    /// The next JSON payload on `topic` that `pred` accepts, skipping anything else.
    pub async fn json_on(
        &mut self,
        topic: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        loop {
            let m = self.next_on(topic).await;
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) {
                if pred(&v) {
                    return v;
                }
            }
        }
    }

    /// The payloads of the next message on each of these topics (under `prefix`), in
    /// whatever order they come.
    pub async fn each_of(&mut self, prefix: &str, leaves: &[&str]) -> HashMap<String, Bytes> {
        let mut got = HashMap::new();
        while leaves.iter().any(|l| !got.contains_key(*l)) {
            let m = self.next().await;
            if let Some(leaf) = m.topic.strip_prefix(prefix) {
                if leaves.contains(&leaf) {
                    got.entry(leaf.to_owned()).or_insert(m.payload);
                }
            }
        }
        got
    }

    /// Whatever arrives within `d`.
    pub async fn drain(&mut self, d: Duration) -> Vec<Msg> {
        let mut got = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout(d, self.rx.recv()).await {
            got.push(m);
        }
        got
    }

    pub async fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) {
        self.publish_qos(topic, QoS::AtLeastOnce, retain, payload)
            .await;
    }

    pub async fn publish_qos(&self, topic: &str, qos: QoS, retain: bool, payload: Vec<u8>) {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .unwrap();
    }
}
