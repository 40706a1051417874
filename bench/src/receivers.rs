//! The receiving ends, each feeding a [`Tally`]: an MQTT subscriber (QoS 1), a NATS
//! subscriber (which also sees what is published to JetStream), and an in-process webhook
//! receiver. The MQTT and NATS subscribers also watch the bridge's session state.
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures_util::StreamExt;
use rumqttc::{AsyncClient, Event, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::task::JoinHandle;

use crate::tally::Tally;

/// Bigger than any event: rumqttc refuses packets over 10 KiB by default.
pub const MQTT_MAX_PACKET: usize = 16 * 1024 * 1024;

/// Whether a `state` payload says `online`.
fn says_online(payload: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(payload).is_ok_and(|v| v["state"] == "online")
}

/// MQTT options for a benchmark client on the local broker.
pub fn mqtt_options(client_id: &str, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(MQTT_MAX_PACKET, MQTT_MAX_PACKET)
        .set_clean_session(true);
    opts
}

/// Tasks that stop when this is dropped.
#[derive(Default)]
pub struct Tasks(pub Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// An MQTT subscriber on `wechat/<account>/message` and `/state`, both at QoS 1.
pub struct MqttSubscriber {
    client: AsyncClient,
    _tasks: Tasks,
}

impl MqttSubscriber {
    /// Connects and returns once both subscriptions are acknowledged.
    pub async fn start(port: u16, account: &str, tally: Arc<Tally>) -> Result<MqttSubscriber> {
        let (client, mut events) =
            AsyncClient::new(mqtt_options(&format!("bench-sub-{account}"), port), 64);
        // A measuring instrument: no Nagle delay on the send commands it publishes.
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let message_topic = format!("wechat/{account}/message");
        let state_topic = format!("wechat/{account}/state");
        client.subscribe(&message_topic, QoS::AtLeastOnce).await?;
        client.subscribe(&state_topic, QoS::AtLeastOnce).await?;
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready);
            let mut subacks = 0;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        subacks += 1;
                        if subacks == 2 {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if p.topic == state_topic {
                            if says_online(&p.payload) {
                                tally.mark_online();
                            }
                        } else {
                            tally.record(&p.payload);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .context("the MQTT subscriber was not acknowledged within 10 s")??;
        Ok(MqttSubscriber {
            client,
            _tasks: Tasks(vec![task]),
        })
    }

    /// The subscriber's client, to publish with (send commands).
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }
}

/// A NATS subscriber on `wechat.<account>.message` and `.state`.
pub struct NatsSubscriber {
    _tasks: Tasks,
}

impl NatsSubscriber {
    /// Connects and returns once the server has the subscriptions.
    pub async fn start(port: u16, account: &str, tally: Arc<Tally>) -> Result<NatsSubscriber> {
        let client = async_nats::connect(format!("nats://127.0.0.1:{port}")).await?;
        let mut messages = client
            .subscribe(format!("wechat.{account}.message"))
            .await?;
        let mut states = client.subscribe(format!("wechat.{account}.state")).await?;
        client.flush().await?;
        let t = tally.clone();
        let on_message = tokio::spawn(async move {
            while let Some(m) = messages.next().await {
                t.record(&m.payload);
            }
        });
        let on_state = tokio::spawn(async move {
            // Keeps the connection (and so the subscriptions) alive with the task.
            let _client = client;
            while let Some(m) = states.next().await {
                if says_online(&m.payload) {
                    tally.mark_online();
                }
            }
        });
        Ok(NatsSubscriber {
            _tasks: Tasks(vec![on_message, on_state]),
        })
    }
}

type Current = Arc<Mutex<Option<Arc<Tally>>>>;

/// The webhook receiver: `POST /hook` answers 200 with an empty body (so the bridge sends no
/// reply) and records message events in the current run's tally; a `login` event marks the
/// bridge online.
pub struct WebhookReceiver {
    /// Its port on 127.0.0.1.
    pub port: u16,
    current: Current,
    _tasks: Tasks,
}

impl WebhookReceiver {
    /// Starts the receiver on a free port.
    pub async fn start() -> Result<WebhookReceiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let current: Current = Arc::default();
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(current.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("webhook receiver stopped: {e}");
            }
        });
        Ok(WebhookReceiver {
            port,
            current,
            _tasks: Tasks(vec![task]),
        })
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Directs what arrives from now on to `tally` (`None`: count nothing).
    pub fn set(&self, tally: Option<Arc<Tally>>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = tally;
    }
}

async fn hook(State(current): State<Current>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let tally = current
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(tally) = tally {
        match headers.get("x-wxbridge-event").map(|v| v.as_bytes()) {
            Some(b"login") => tally.mark_online(),
            _ => tally.record(&body),
        }
    }
    StatusCode::OK
}
