//! The webhook sink (DESIGN.md "Webhooks"): each spooled event of a subscribed kind is POSTed
//! as it was spooled, signed per Standard Webhooks when a secret is set, and a `{"reply":…}`
//! answer to a message becomes a send command through the bridge's [`Intake`].
//!
//! Delivery guarantee: at least once, in spool order, one request at a time per webhook. A
//! 2xx counts as delivered; any other status, a redirect, a network error or the configured
//! `timeout` fails the batch at that entry, and [`crate::sinks::run_delivery`] retries it with
//! backoff. A redelivery carries the same `webhook-id` (`<account>:<id>`), so receivers can
//! drop duplicates, and a reply to it carries the same `request_id`, which the bridge sends
//! only once.
//!
//! Every POST names its account in `X-Wxbridge-Account` besides `X-Wxbridge-Event`: with
//! several accounts each account's sink POSTs its own events to the same URLs, and a receipt's
//! body does not name its account.
//!
//! Replies never answer the bridge's own messages (`origin: bridge`), and each chat gets at
//! most `max_replies_per_minute` of them: a receiver that answers everything meeting a chat
//! that does too would otherwise send as fast as the throttle allows.
//!
//! [`Intake`]: crate::sinks::Intake
use thiserror::Error;

mod budget;
mod sign;
mod sink;

pub use sign::{sign, SigningKey};

/// The `request_id` prefix of webhook replies (`reply:<webhook-id>`). Reserved: the bridge
/// refuses it from every other source of commands.
pub const REPLY_PREFIX: &str = "reply:";
pub use sink::{prepare, Prepared, WebhookSink};

/// A webhook's configuration cannot be used; the message names the key and the fix.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// `webhooks[<index>].secret` is unusable.
    #[error("webhooks[{index}].secret {problem}")]
    Secret {
        /// The webhook's position in `webhooks`.
        index: usize,
        /// What is wrong with it.
        problem: SecretError,
    },
    /// The HTTP client could not be built (for example no TLS roots on the machine).
    #[error("webhooks[{index}]: cannot build the HTTP client: {cause}")]
    Client {
        /// The webhook's position in `webhooks`.
        index: usize,
        /// Why, from the HTTP library.
        cause: String,
    },
}

impl From<WebhookError> for crate::config::ConfigError {
    fn from(e: WebhookError) -> Self {
        crate::config::ConfigError::Sink(Box::new(e))
    }
}

/// What is wrong with a signing secret. Never carries the secret itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SecretError {
    /// `whsec_` followed by something that is not base64.
    #[error(
        "starts with `whsec_` but the rest is not valid base64; copy the secret exactly as the \
         receiver shows it (`whsec_<base64>`), or give raw text without the `whsec_` prefix"
    )]
    NotBase64,
    /// Empty, or `whsec_` with nothing after it.
    #[error("is empty; set a secret, or remove the key to send unsigned requests")]
    Empty,
}
