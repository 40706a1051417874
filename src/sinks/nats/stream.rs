//! The JetStream stream events go to: looked up on every connect, created when missing with
//! exactly the two event subjects of each account, never changed when it exists (see the module docs of
//! [`super`]).
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream::context::{
    Context, ContextBuilder, CreateStreamErrorKind, GetStreamErrorKind,
};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::ErrorCode;
use async_nats::Client;
use tokio_util::sync::CancellationToken;

use super::connect::LinkState;
use super::{Subjects, STALL};

/// Whether `name` is a valid stream name (the server refuses dots, spaces and wildcards).
pub(super) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
}

/// The stream and the JetStream context that publishes to it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// Publishes and API requests; every wait bounded by [`STALL`].
    pub(super) context: Context,
    /// `nats.stream`.
    pub(super) name: String,
    /// Exactly `<p>.<a>.message` and `<p>.<a>.event` of every account.
    pub(super) subjects: Vec<String>,
}

impl Target {
    /// The stream `name` over the message and event subjects of every account in `accounts`.
    pub(super) fn new(client: Client, name: &str, accounts: &[Subjects]) -> Target {
        Target {
            context: ContextBuilder::new().timeout(STALL).build(client),
            name: name.to_owned(),
            subjects: accounts
                .iter()
                .flat_map(|s| s.stream_subjects())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The configuration of a stream we create: as little as possible, because nats-server 2.9
    /// knows none of the 2.10+ fields; the server's defaults give unlimited retention by limits
    /// and a two-minute duplicate window.
    fn config(&self) -> Config {
        Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            num_replicas: 1,
            max_bytes: -1,
            max_messages: -1,
            max_messages_per_subject: -1,
            max_consumers: -1,
            ..Default::default()
        }
    }

    /// Makes sure the stream exists: creates it when missing; an existing one with other
    /// subjects is reported and left alone. `Err` only when the server could not be asked.
    pub(super) async fn ensure(&self) -> Result<(), String> {
        match self.context.get_stream(&self.name).await {
            Ok(stream) => {
                self.compare(&stream.cached_info().config.subjects);
                return Ok(());
            }
            Err(e) if !is_not_found(e.kind()) => {
                return Err(format!("cannot look up stream `{}`: {e}", self.name));
            }
            Err(_) => {}
        }
        match self.context.create_stream(self.config()).await {
            Ok(_) => {
                tracing::info!(stream = %self.name, subjects = ?self.subjects, "created the JetStream stream");
                Ok(())
            }
            Err(e) => match e.kind() {
                CreateStreamErrorKind::JetStream(js)
                    if js.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP =>
                {
                    // Another stream already takes these subjects; publishing goes there.
                    tracing::error!(
                        stream = %self.name,
                        subjects = ?self.subjects,
                        cause = %js,
                        "cannot create the JetStream stream: another stream already captures its \
                         subjects; events are stored there instead"
                    );
                    Ok(())
                }
                CreateStreamErrorKind::JetStream(js)
                    if js.error_code() == ErrorCode::STREAM_NAME_EXIST =>
                {
                    // Created meanwhile (another instance, or the keeper and a delivery at once).
                    let stream = self
                        .context
                        .get_stream(&self.name)
                        .await
                        .map_err(|e| format!("cannot look up stream `{}`: {e}", self.name))?;
                    self.compare(&stream.cached_info().config.subjects);
                    Ok(())
                }
                _ => Err(format!("cannot create stream `{}`: {e}", self.name)),
            },
        }
    }

    fn compare(&self, found: &[String]) {
        let mut found_sorted = found.to_vec();
        found_sorted.sort();
        let mut wanted = self.subjects.clone();
        wanted.sort();
        if found_sorted != wanted {
            tracing::error!(
                stream = %self.name,
                expected = ?self.subjects,
                found = ?found,
                "the JetStream stream exists with other subjects and is left unchanged; set its \
                 subjects to exactly the expected ones (a stream that captures `.send` answers \
                 send requests with its own acks), or delete it to have it recreated"
            );
        }
    }
}

fn is_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// Checks the stream after every connect, so it exists before the first event is published.
/// A check that fails is left to the next delivery, which checks again first.
pub(super) async fn keep(target: Target, link: Arc<LinkState>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = link.connected.notified() => {}
        }
        match target.ensure().await {
            Ok(()) => link.stream_checked.store(true, Ordering::Relaxed),
            Err(cause) => {
                tracing::warn!(stream = %target.name, cause = %cause, "stream check failed; retried before the next delivery")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_server_rules() {
        assert!(is_valid_name("WECHAT"));
        assert!(is_valid_name("wechat-home_2"));
        for bad in ["", "WE.CHAT", "WE CHAT", "WE*", "A>B", "a/b"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
}
