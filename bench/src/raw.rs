//! The baselines: minimal clients of the same kind the bridge uses, publishing the bridge's
//! own event payloads straight to the same broker or receiver. Each is connected first
//! ([`RawMqtt::connect`] …) so that only publishing is timed.
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};

use std::sync::Arc;

use crate::receivers::mqtt_options;
use crate::tally::{latency_index, message_id, Stamps};

/// rumqttc at QoS 1 with its defaults (100 publishes in flight), as the bridge uses it.
pub struct RawMqtt {
    client: AsyncClient,
    events: EventLoop,
    topic: String,
}

impl RawMqtt {
    /// Connects (waits for the ConnAck).
    pub async fn connect(port: u16, account: &str) -> Result<RawMqtt> {
        let (client, mut events) =
            AsyncClient::new(mqtt_options(&format!("bench-raw-{account}"), port), 64);
        let connected = async {
            loop {
                if let Event::Incoming(Packet::ConnAck(_)) = events.poll().await? {
                    return Ok::<_, rumqttc::ConnectionError>(());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), connected)
            .await
            .context("no ConnAck from mosquitto within 10 s")??;
        Ok(RawMqtt {
            client,
            events,
            topic: format!("wechat/{account}/message"),
        })
    }

    /// Publishes every payload and returns once all are acknowledged (PUBACK).
    pub async fn publish_all(mut self, payloads: &[Vec<u8>]) -> Result<()> {
        let client = self.client.clone();
        let topic = self.topic.clone();
        let owned: Vec<Vec<u8>> = payloads.to_vec();
        // The event loop must keep being polled while the request channel is full, so
        // publishing happens on another task.
        let publisher = tokio::spawn(async move {
            for p in owned {
                client.publish(&topic, QoS::AtLeastOnce, false, p).await?;
            }
            Ok::<_, rumqttc::ClientError>(())
        });
        let mut acked = 0;
        while acked < payloads.len() {
            match self.events.poll().await? {
                Event::Incoming(Packet::PubAck(_)) => acked += 1,
                _ => continue,
            }
        }
        publisher.await??;
        let _ = self.client.disconnect().await;
        Ok(())
    }
}

impl RawMqtt {
    /// Publishes `payloads` at one per `period`, stamping each tagged payload's index in
    /// `stamps` as it is handed to the client; returns once all are acknowledged.
    pub async fn publish_paced(
        mut self,
        payloads: Vec<Vec<u8>>,
        period: Duration,
        stamps: Arc<Stamps>,
    ) -> Result<()> {
        let n = payloads.len();
        let client = self.client.clone();
        let topic = self.topic.clone();
        let publisher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            for p in payloads {
                tick.tick().await;
                if let Some(i) = latency_index(&p) {
                    stamps.stamp(i);
                }
                client.publish(&topic, QoS::AtLeastOnce, false, p).await?;
            }
            Ok::<_, rumqttc::ClientError>(())
        });
        let mut acked = 0;
        while acked < n {
            if let Event::Incoming(Packet::PubAck(_)) = self.events.poll().await? {
                acked += 1;
            }
        }
        publisher.await??;
        let _ = self.client.disconnect().await;
        Ok(())
    }
}

/// async-nats core publishing, then one flush.
pub struct RawNats {
    client: async_nats::Client,
    subject: String,
}

impl RawNats {
    /// Connects.
    pub async fn connect(port: u16, account: &str) -> Result<RawNats> {
        Ok(RawNats {
            client: async_nats::connect(format!("nats://127.0.0.1:{port}")).await?,
            subject: format!("wechat.{account}.message"),
        })
    }

    /// Publishes every payload and flushes.
    pub async fn publish_all(self, payloads: &[Vec<u8>]) -> Result<()> {
        for p in payloads {
            self.client
                .publish(self.subject.clone(), p.clone().into())
                .await?;
        }
        self.client.flush().await?;
        Ok(())
    }
}

/// async-nats JetStream publishing with `Nats-Msg-Id`, every ack awaited.
pub struct RawJetStream {
    context: jetstream::Context,
    account: String,
    subject: String,
}

/// Acks awaited together, as the bridge awaits those of one spool batch.
const ACK_WINDOW: usize = 256;

impl RawJetStream {
    /// Connects and creates `stream` for the account's two event subjects, as the bridge
    /// would (file storage, limits retention).
    pub async fn connect(port: u16, account: &str, stream_name: &str) -> Result<RawJetStream> {
        let client = async_nats::connect(format!("nats://127.0.0.1:{port}")).await?;
        let context = jetstream::new(client);
        context
            .create_stream(stream::Config {
                name: stream_name.to_owned(),
                subjects: vec![
                    format!("wechat.{account}.message"),
                    format!("wechat.{account}.event"),
                ],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot create stream {stream_name}: {e}"))?;
        Ok(RawJetStream {
            context,
            account: account.to_owned(),
            subject: format!("wechat.{account}.message"),
        })
    }

    /// Publishes every payload and waits for every ack.
    pub async fn publish_all(self, payloads: &[Vec<u8>]) -> Result<()> {
        for window in payloads.chunks(ACK_WINDOW) {
            let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(window.len());
            for p in window {
                let id = message_id(p).unwrap_or_default();
                let msg = jetstream::message::PublishMessage::build()
                    .payload(p.clone().into())
                    .message_id(format!("{}:{id}", self.account));
                acks.push(
                    self.context
                        .send_publish(self.subject.clone(), msg)
                        .await
                        .map_err(|e| anyhow::anyhow!("JetStream publish: {e}"))?,
                );
            }
            for ack in acks {
                ack.await
                    .map_err(|e| anyhow::anyhow!("JetStream ack: {e}"))?;
            }
        }
        Ok(())
    }
}

/// reqwest, one POST at a time, with the bridge's headers (no signature: the benchmark's
/// webhook has no secret).
pub struct RawWebhook {
    client: reqwest::Client,
    url: String,
}

impl RawWebhook {
    /// A client for `url`.
    pub fn new(url: &str) -> Result<RawWebhook> {
        Ok(RawWebhook {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
            url: url.to_owned(),
        })
    }

    /// POSTs every payload in turn, each awaited.
    pub async fn publish_all(self, payloads: &[Vec<u8>]) -> Result<()> {
        for p in payloads {
            let status = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("x-wxbridge-event", "message")
                .body(p.clone())
                .send()
                .await?
                .status();
            if !status.is_success() {
                bail!("the webhook receiver answered {status}");
            }
        }
        Ok(())
    }
}
