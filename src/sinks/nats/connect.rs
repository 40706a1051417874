//! The NATS connection: options from the `nats` section, the reconnect schedule, and the
//! connection events the rest of the link reacts to.
//!
//! Reconnect schedule (also for the first connect): the very first attempt is immediate; after
//! that attempt `n` waits a random time between `d` and `2d`, capped at `retry.max`, where `d`
//! is `retry.initial` doubled `n - 1` times (so never less than `retry.initial`). It never gives
//! up, and starts over after each successful connect (async-nats resets its attempt count).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerAddr};
use tokio::sync::{watch, Notify};
use url::Url;

use super::NatsError;
use crate::config::NatsConfig;
use crate::retry::Retry;
use crate::sinks::Link;

/// What the connection's event callback tells the rest of the link.
#[derive(Debug)]
pub(super) struct LinkState {
    /// `host:port`, for logs (the URL may carry credentials).
    server: String,
    /// Connected as far as the events tell; logs only the changes.
    up: AtomicBool,
    /// Has ever connected (the very first attempt goes without delay).
    ever_connected: AtomicBool,
    /// A failed attempt was logged since the last connect.
    failure_logged: AtomicBool,
    /// Cleared on every connect: the JetStream stream must be checked again.
    pub(super) stream_checked: AtomicBool,
    /// Notified on every connect (keeps a permit when nobody waits).
    pub(super) connected: Notify,
    /// Bumped on every disconnect, so a batch waiting for acks can give up at once.
    pub(super) disconnects: watch::Sender<u64>,
    /// Up from each connect to the next disconnect, for the health checks.
    pub(super) health: watch::Sender<Link>,
}

impl LinkState {
    /// A link to `url`, not connected yet.
    pub(super) fn new(url: &Url) -> LinkState {
        LinkState {
            server: server_label(url),
            up: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            failure_logged: AtomicBool::new(false),
            stream_checked: AtomicBool::new(false),
            connected: Notify::new(),
            disconnects: watch::channel(0).0,
            health: watch::channel(Link::Down).0,
        }
    }

    fn on_event(&self, event: Event) {
        match event {
            Event::Connected => {
                self.failure_logged.store(false, Ordering::Relaxed);
                self.stream_checked.store(false, Ordering::Relaxed);
                let again = self.ever_connected.swap(true, Ordering::Relaxed);
                if !self.up.swap(true, Ordering::Relaxed) {
                    if again {
                        tracing::info!(server = %self.server, "reconnected to NATS");
                    } else {
                        tracing::info!(server = %self.server, "connected to NATS");
                    }
                }
                self.health.send_replace(Link::Up);
                self.connected.notify_one();
            }
            Event::Disconnected => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(server = %self.server, "NATS connection lost; reconnecting");
                }
                self.health.send_replace(Link::Down);
                self.disconnects.send_modify(|n| *n += 1);
            }
            Event::ClientError(e) => {
                // Every failed attempt reports one; say it once per outage.
                if !self.failure_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(server = %self.server, cause = %e, "cannot reach NATS; retrying");
                } else {
                    tracing::debug!(server = %self.server, cause = %e, "NATS attempt failed");
                }
            }
            Event::ServerError(e) => {
                tracing::error!(server = %self.server, cause = %e, "NATS server error");
            }
            Event::SlowConsumer(sid) => {
                tracing::warn!(
                    subscription = sid,
                    "NATS subscription too slow; messages dropped"
                );
            }
            Event::LameDuckMode => {
                tracing::info!(server = %self.server, "NATS server entering lame duck mode");
            }
            Event::Draining | Event::Closed => {
                tracing::debug!(server = %self.server, event = %event, "NATS connection");
            }
        }
    }
}

/// `host:port` of a URL, without credentials.
fn server_label(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The wait before reconnect attempt `attempt` (1-based): `d..2d` where `d` = `initial`
/// doubled `attempt - 1` times, all capped at `max`. `jitter` is in `0.0..1.0`.
pub(super) fn reconnect_delay(retry: Retry, attempt: usize, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32) as u32;
    let base = retry
        .initial
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(retry.max);
    base.saturating_add(base.mul_f64(jitter.clamp(0.0, 1.0)))
        .min(retry.max)
}

/// The connection options of the section, checked now: the server address, the credentials
/// file read and parsed, the CA file read. The reconnect schedule and the event callback are
/// added by [`connect`].
pub(super) fn options(config: &NatsConfig) -> Result<(ConnectOptions, ServerAddr), NatsError> {
    let addr = server_addr(&config.url)?;
    let mut options = ConnectOptions::new()
        .name("wxbridge")
        .retry_on_initial_connect()
        .max_reconnects(None);
    if let Some(path) = &config.credentials_file {
        // Read here, not by async-nats while connecting: `check-config` then sees a bad file.
        let credentials = |source| NatsError::Credentials {
            path: path.clone(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(credentials)?;
        options = options.credentials(&text).map_err(credentials)?;
    }
    if let Some(token) = &config.token {
        options = options.token(token.expose().to_owned());
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(path) = &config.ca_file {
        check_ca_file(path)?;
        options = options.add_root_certificates(path.clone());
    }
    if config.url.scheme() == "tls" {
        options = options.require_tls(true);
    }
    Ok((options, addr))
}

/// Connects in the background with `options`. Fails only when the client cannot be set up;
/// an unreachable server is retried for ever.
pub(super) async fn connect(
    options: ConnectOptions,
    addr: ServerAddr,
    retry: Retry,
    link: Arc<LinkState>,
) -> Result<Client, NatsError> {
    let delays = link.clone();
    let events = link.clone();
    options
        .reconnect_delay_callback(move |attempt| {
            if attempt <= 1 && !delays.ever_connected.load(Ordering::Relaxed) {
                return Duration::ZERO;
            }
            reconnect_delay(retry, attempt, fastrand::f64())
        })
        .event_callback(move |event| {
            let link = events.clone();
            async move { link.on_event(event) }
        })
        .connect(addr)
        .await
        .map_err(|e| NatsError::Client(e.to_string()))
}

/// The server address; the scheme was checked by the loader, the rest is async-nats's to
/// judge.
fn server_addr(url: &Url) -> Result<ServerAddr, NatsError> {
    url.as_str()
        .parse::<ServerAddr>()
        .map_err(|e| NatsError::Url {
            url: format!("{}://{}", url.scheme(), server_label(url)),
            reason: e.to_string(),
        })
}

/// Reads the CA file now: async-nats reads it only while connecting, where a bad file would
/// look like an unreachable server and be retried for ever.
fn check_ca_file(path: &std::path::Path) -> Result<(), NatsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    let refuse = |reason: String| NatsError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| refuse(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse(e.to_string()))?;
    if certs.is_empty() {
        return Err(refuse("no PEM certificate in it".to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> Retry {
        Retry {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }

    #[test]
    fn reconnect_delays_double_with_jitter_between_initial_and_max() {
        let r = retry();
        let ms = |attempt, jitter| reconnect_delay(r, attempt, jitter).as_millis();
        assert_eq!(ms(1, 0.0), 100);
        assert!((199..=200).contains(&ms(1, 0.999)));
        assert_eq!(ms(3, 0.0), 400);
        assert!((599..=600).contains(&ms(3, 0.5)));
        for attempt in [7, 8, 64, usize::MAX] {
            assert_eq!(reconnect_delay(r, attempt, 0.9), Duration::from_secs(5));
        }
        for attempt in 0..100 {
            let d = reconnect_delay(r, attempt, fastrand::f64());
            assert!(d >= r.initial && d <= r.max, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn bad_urls_and_ca_files_are_refused_with_the_key_named() {
        let e = server_addr(&Url::parse("http://user:pw@host:1").unwrap()).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("nats.url `http://host:1`"), "{text}");
        assert!(text.contains("invalid scheme"), "{text}");
        assert!(!text.contains("pw"), "no credentials in errors: {text}");
        assert!(server_addr(&Url::parse("tls://host:4222").unwrap()).is_ok());

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = check_ca_file(&missing).unwrap_err().to_string();
        assert!(e.starts_with("cannot use nats.ca_file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = check_ca_file(&empty).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn connection_changes_set_the_health_and_flag_the_stream_for_another_check() {
        let link = LinkState::new(&Url::parse("nats://127.0.0.1:4222").unwrap());
        link.stream_checked.store(true, Ordering::Relaxed);
        let disconnects = link.disconnects.subscribe();
        link.on_event(Event::Disconnected);
        assert!(disconnects.has_changed().unwrap());
        assert_eq!(*link.health.borrow(), Link::Down);
        link.on_event(Event::Connected);
        assert_eq!(*link.health.borrow(), Link::Up);
        assert!(!link.stream_checked.load(Ordering::Relaxed));
        assert!(link.ever_connected.load(Ordering::Relaxed));
    }
}
