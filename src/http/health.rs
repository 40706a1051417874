//! What the HTTP layer knows of each sink: whether its link is up (for `/readyz`, the page and
//! `wxbridge_sink_connected`) and why its last delivery failed, if it did.
//!
//! "Connected" means what the sink's [`Link`] watch says (MQTT: a ConnAck and no failure
//! since; NATS: the client's connection events); for webhooks and stdout, which hold no
//! standing connection, that their last delivery attempt did not fail (a sink that has
//! delivered nothing yet counts as connected).
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::sinks::{DeliveryError, Link, Sink};
use crate::spool::{Entry, Kind};

/// One sink as the HTTP layer sees it.
pub struct SinkHealth {
    name: String,
    link: watch::Receiver<Link>,
    last_error: LastError,
}

/// The cause of the last failed delivery; `None` once a delivery succeeds.
type LastError = Arc<Mutex<Option<String>>>;

impl SinkHealth {
    /// The sink's name (`mqtt`, `nats`, `webhook:0`, `stdout`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the sink's link is up (see the module docs for what that means per sink).
    pub fn connected(&self) -> bool {
        match *self.link.borrow() {
            Link::Up => true,
            Link::Down => false,
            Link::Connectionless => self.last_error().is_none(),
        }
    }

    /// Why the last delivery failed, unless one succeeded since.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Wraps `sink` so its delivery outcomes are recorded; answers the wrapped sink (hand it to
/// `run_delivery`) and its health (hand it to the HTTP state). `link` is the sink's
/// [`crate::sinks::Started::health`].
pub fn observe<S: Sink>(sink: S, link: watch::Receiver<Link>) -> (Watched<S>, SinkHealth) {
    let last_error = LastError::default();
    let health = SinkHealth {
        name: sink.name().to_owned(),
        link,
        last_error: last_error.clone(),
    };
    (
        Watched {
            inner: sink,
            last_error,
        },
        health,
    )
}

/// A sink whose delivery outcomes are recorded for [`SinkHealth`].
pub struct Watched<S> {
    inner: S,
    last_error: LastError,
}

impl<S: Sink> Sink for Watched<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn accepts(&self, kind: Kind) -> bool {
        self.inner.accepts(kind)
    }

    async fn deliver(&mut self, batch: &[Entry]) -> Result<(), DeliveryError> {
        let outcome = self.inner.deliver(batch).await;
        self.record(outcome.as_ref().err());
        outcome
    }

    async fn submit(&mut self, batch: Vec<Entry>) -> Result<usize, DeliveryError> {
        let outcome = self.inner.submit(batch).await;
        self.record(outcome.as_ref().err());
        outcome
    }

    async fn confirmed(&mut self) -> Result<usize, DeliveryError> {
        let outcome = self.inner.confirmed().await;
        self.record(outcome.as_ref().err());
        outcome
    }
}

impl<S> Watched<S> {
    fn record(&self, failure: Option<&DeliveryError>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failure.map(|e| e.cause.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flaky {
        fail: bool,
    }

    impl Sink for Flaky {
        fn name(&self) -> &str {
            "webhook:0"
        }

        fn accepts(&self, _kind: Kind) -> bool {
            true
        }

        async fn deliver(&mut self, _batch: &[Entry]) -> Result<(), DeliveryError> {
            if self.fail {
                Err(DeliveryError {
                    delivered: 0,
                    cause: "HTTP 500".into(),
                })
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn a_sink_without_a_link_is_connected_until_a_delivery_fails_and_again_after_one_succeeds(
    ) {
        let (mut sink, health) = observe(Flaky { fail: false }, Link::connectionless());
        assert_eq!(health.name(), "webhook:0");
        assert!(
            health.connected(),
            "nothing delivered yet counts as connected"
        );
        sink.inner.fail = true;
        assert!(sink.deliver(&[]).await.is_err());
        assert!(!health.connected());
        assert_eq!(health.last_error().as_deref(), Some("HTTP 500"));
        sink.inner.fail = false;
        assert!(sink.deliver(&[]).await.is_ok());
        assert!(health.connected());
        assert_eq!(health.last_error(), None);
    }

    #[tokio::test]
    async fn a_sink_with_a_link_is_connected_while_its_link_says_so_whatever_its_deliveries() {
        let (tx, rx) = watch::channel(Link::Down);
        let (mut sink, health) = observe(Flaky { fail: false }, rx);
        assert!(!health.connected());
        tx.send_replace(Link::Up);
        assert!(health.connected());
        sink.inner.fail = true;
        assert!(sink.deliver(&[]).await.is_err());
        assert!(health.connected(), "the link, not the delivery, tells");
    }
}
