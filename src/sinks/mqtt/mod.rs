//! The MQTT link (DESIGN.md "Topics and subjects"): events out on `<base>/<account>/message`,
//! `/event` and `/send/result`; the retained `/status`, `/state`, `/qr` and `/qr/png`; send
//! commands, re-login and log-out requests in on `/send`, `/relogin` and `/logout`; and, unless
//! `homeassistant.enabled` is false, Home Assistant discovery (`homeassistant.rs`) with its
//! notify commands in on `/notify/<target>`. With `mqtt.media`, the bytes of each stored file
//! a message event refers to go out on `/media/<sha256>` before the event, confirmed first;
//! with discovery on, inbound images also go to Home Assistant's last-image entity
//! (`media.rs`).
//!
//! Shape (`start.rs`): [`prepare`] builds the client options from the `mqtt` section
//! (`options.rs`), the TLS files read and checked, for every account the process runs, and
//! [`Prepared::start`] opens ONE connection for all of them and answers one [`MqttSink`] per
//! account, which `run_delivery` drives from that account's spool (each sink is named `mqtt`:
//! every account has its own spool, so their cursors never meet). The tasks (`link.rs`): the poller
//! (`poller.rs`), which alone drives rumqttc's event loop; per account, a link task, which
//! alone publishes that account's topics (discovery included), and a command task, which hands
//! that account's `/send` and notify payloads to its bridge and acks them; and the connection
//! task, which says goodbye.
//!
//! Several accounts: each has its own topics under `<base>/<account>/`, its own Home
//! Assistant device, and its own commands: the poller routes a publish by the account its
//! topic names (`topics::Router`) to that account's channels, so a command on one account's
//! topic reaches that account's bridge and no other. Isolation:
//! - Commands: each account has its own queues and command task, so an account whose bridge
//!   is slow to take commands holds up only its own. What all accounts share is the broker's
//!   inflight window for the connection (mosquitto's `max_inflight_messages`, 20): an account
//!   whose bridge takes no commands at all (it is restarting) keeps its QoS 1 commands
//!   unacked, and twenty of them would hold every account's commands at the broker until it
//!   takes them. A bridge takes a command as soon as it has validated and spooled it (sending
//!   waits in the spool, not here), so only a bridge that is down does that.
//! - Publishes: the link tasks take turns at the client (`link::Gate`, a fair lock, one
//!   publish per turn), so one account's long batch or large file delays another's events by
//!   one publish at a time, and a wait of one account's (a file's PUBACK) holds no turn. A
//!   broker that is slow or away slows every account alike: they share its connection.
//!
//! Availability and the last will: MQTT gives a connection one will, on one topic. With one
//! account it is the account's `<base>/<account>/status`, as it always was. With several it
//! is the process's own `<base>/status` (`online` after every connect, `offline` at a clean
//! stop or, as the will, when the process dies or loses the broker); each account's
//! `<base>/<account>/status` says `online` while its part of the link runs and `offline` at a
//! clean stop, but only `<base>/status` goes `offline` when the process dies. Each account's
//! Home Assistant entities list both topics as availability with `availability_mode: all`, so
//! every device goes unavailable with the process; other consumers watch `<base>/status` too.
//! (One connection per account would give each its own will, at the cost of the one
//! connection and one persistent session that `mqtt.client_id` names.)
//!
//! Delivery guarantee: an entry counts as delivered on its PUBACK (QoS 1), PUBCOMP (QoS 2), or
//! once written to the socket (QoS 0, best effort). rumqttc does not say which PUBACK answers
//! which publish, so `tracker.rs` pairs them. The sink pipelines: the next batch goes out while
//! the PUBACKs of up to one earlier batch are outstanding (`WINDOW` entries in flight), so the
//! link never idles waiting for the last acks of a batch. A lost connection fails nothing by
//! itself: when the broker resumes the session, rumqttc sends the unacked publishes again and
//! their PUBACKs complete the batch. When the broker starts a new session (it lost ours),
//! rumqttc has dropped them, so everything in flight fails from the first unconfirmed entry
//! and the spool retries from there; so does anything unconfirmed for 30 s. A duplicate after
//! a reconnect is possible, a gap is not. A `/send` command is acknowledged to the broker only once the bridge
//! has validated and durably queued it, or answered it; the persistent session
//! (`clean_session` false, stable client id) makes the broker redeliver anything unacknowledged
//! after a restart.
//!
//! Backpressure on what comes in: the poller must keep polling rumqttc's event loop (the
//! command task's acks and every publish go out through it), so it never waits for a channel
//! it feeds: each is bounded (`link::QUEUE`) and filled with `try_send`.
//! - QoS 1 and 2 commands are never dropped. Their PUBACK waits until the bridge has the
//!   command (manual acks), so the broker's inflight window (mosquitto's
//!   `max_inflight_messages`, 20 by default) holds back the rest at the broker, where they wait
//!   durably; what finds the channel full waits in the poller, in order, for the command task
//!   to take the ones before (each ack wakes the poller). A broker without a window
//!   (`max_inflight_messages 0`) is the only way to pile them up in the bridge.
//! - QoS 0 commands have no ack to hold back and no redelivery: one that finds its channel full
//!   is dropped, counted (`wxbridge_mqtt_refused_total{reason="queue_full"}` and
//!   [`LinkState::dropped`]) and logged once per burst. Pausing the reads instead would also
//!   stall the PUBACKs of our events, the pings, and every QoS 1 command. The command task
//!   takes QoS 1 and 2 commands first.
//! - Home Assistant's publishes (QoS 0) are dropped the same way when their channel is full.
//!
//! Size: no incoming packet can break the connection by its size (`options::MAX_INCOMING` is
//! MQTT's own maximum, why in `options.rs`): an oversized command (a 17 MB `/send`, say) is
//! read, cut to `send.max_bytes + 1` bytes, handed over and answered `invalid_command` (with
//! the `request_id` its head carries), and acked; an oversized publish on Home Assistant's
//! topics (a huge retained `homeassistant/status`) is ignored. Both are logged once and
//! counted (`reason="too_large"`, [`LinkState::too_large`]), and the link stays up. Had the
//! packet been refused by rumqttc's size check instead, the broker would hand it over again
//! after every reconnect, for ever.
use std::path::PathBuf;

use thiserror::Error;

mod homeassistant;
mod link;
mod media;
mod options;
mod poller;
mod sink;
mod start;
mod topics;
mod tracker;

pub use link::LinkState;
pub use sink::MqttSink;
pub use start::{prepare, Prepared};

/// The `mqtt` section cannot be turned into a connection. Each message names the key to fix.
///
/// The section's values on their own (URL scheme and host, QoS, client id, certificate and key
/// set together, the base topic) are the loader's to check (`config/validate.rs`); these are
/// the problems only the files and rustls can show.
#[derive(Debug, Error)]
pub enum MqttError {
    /// A PEM file cannot be read or parsed.
    #[error("{key}: cannot read `{}`: {cause}", path.display())]
    Pem {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        cause: String,
    },
    /// A PEM file holds no certificate.
    #[error("{key}: `{}` holds no PEM certificate", path.display())]
    NoCertificate {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// `mqtts://` without any CA to trust.
    #[error(
        "mqtt.url is mqtts:// but no CA certificate is trusted: no system bundle was found \
         (SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt, …); set mqtt.ca_file to the PEM \
         of the CA that signed the broker's certificate"
    )]
    NoTrustedCa,
    /// rustls refused the TLS setup (a bad client certificate or key, usually).
    #[error("mqtt TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

impl From<MqttError> for crate::config::ConfigError {
    fn from(e: MqttError) -> Self {
        crate::config::ConfigError::Sink(Box::new(e))
    }
}
