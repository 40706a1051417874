//! What this bridge sent, so that WeChat's echo of it is marked `origin: bridge` with its
//! `request_id` and no automation answers the bridge's own messages.
//!
//! WeChat echoes a sent message back in the sync as a message from self (PROTOCOL.md §8.1).
//! The echo may carry the send's MsgID, or a MsgId of its own, and may arrive before or after
//! the send's answer. So a send is remembered twice: by the MsgID its answer gave, and by chat
//! and text from the moment it starts until [`ECHO_WINDOW`] later, so an echo with a new MsgId
//! is still recognised. Each send claims at most one echo by content, so a message the owner
//! types on the phone with the same text is only mistaken for the bridge's when it comes
//! within that window of an unclaimed send with the same text to the same chat.
//!
//! The first echo of each send is also what its `echoed` receipt reports (see `receipts`): a
//! send stays awaited until then, and one WeChat answered whose echo has not come within
//! [`echo_deadline`] is handed to [`SentLog::overdue`] to be logged and counted.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::event::MessageType;

/// How many sent MsgIds (and recent sends) are remembered.
const SENT_MEMORY: usize = 10_000;
/// How long after a send an echo with a MsgId of its own is still taken for the send's.
pub(super) const ECHO_WINDOW: Duration = Duration::from_secs(60);

/// The bridge's sends: by MsgID, recent ones by chat and text, and how many are still
/// waiting for WeChat's answer (an echo can come back before the answer does).
#[derive(Default)]
pub(super) struct SentLog {
    sends: Mutex<Sends>,
    in_flight: watch::Sender<usize>,
}

#[derive(Default)]
struct Sends {
    /// MsgID → request_id.
    by_msg_id: HashMap<String, Option<String>>,
    /// The MsgIDs in `by_msg_id`, oldest first.
    order: VecDeque<String>,
    /// Sends whose echo was not seen yet, oldest first.
    recent: VecDeque<Recent>,
    /// Sends whose first echo has not come yet, oldest first (kept past `ECHO_WINDOW`).
    awaited: VecDeque<Awaited>,
    next_key: u64,
}

/// A send whose `echoed` receipt is still due.
struct Awaited {
    key: u64,
    request_id: Option<String>,
    /// The MsgID WeChat answered, once it did.
    msg_id: Option<String>,
    /// Since when: the start of the send, then its answer.
    since: Instant,
    /// Whether WeChat answered with a MsgID; only such a send's echo is missed.
    answered: bool,
}

/// A message from self that is the echo of one of the bridge's sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Echo {
    /// The send's request_id (possibly none).
    pub(super) request_id: Option<String>,
    /// True for the send's first echo: its `echoed` receipt is due.
    pub(super) first: bool,
    /// The MsgID WeChat answered the send with, when it did before the echo came.
    pub(super) msg_id: Option<String>,
}

/// An answered send whose echo did not come in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Missed {
    pub(super) request_id: Option<String>,
    pub(super) msg_id: Option<String>,
}

/// How long after WeChat's answer a send's echo may take before it counts as missing (DESIGN.md
/// "Receipts": 2 minutes). Debug builds read `WXBRIDGE_ECHO_DEADLINE_MS` so that tests need
/// not wait that long.
pub(super) fn echo_deadline() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("WXBRIDGE_ECHO_DEADLINE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    Duration::from_secs(120)
}

/// A send whose echo may still come.
struct Recent {
    key: u64,
    chat: String,
    text: String,
    request_id: Option<String>,
    at: Instant,
    msg_id: Option<String>,
}

/// One send in flight: call [`SendGuard::finish`] or [`SendGuard::forget`].
pub(super) struct SendGuard<'a> {
    log: &'a SentLog,
    key: u64,
    request_id: Option<String>,
}

/// What a media send is remembered by in place of a text: its kind (`image`, `file`, `video`,
/// `emoticon`), marked so that no text can be taken for it.
pub(super) fn media_echo_key(kind: &str) -> String {
    format!("\u{0}{kind}")
}

/// The key a media message from self is claimed by, if it is one the bridge can send.
pub(super) fn echo_key_of(t: MessageType) -> Option<String> {
    let kind = match t {
        MessageType::Image => "image",
        MessageType::File => "file",
        MessageType::Video => "video",
        MessageType::Emoticon => "emoticon",
        _ => return None,
    };
    Some(media_echo_key(kind))
}

/// Text as the echo and the command may spell it differently: line ends and outer blanks.
fn comparable(text: &str) -> String {
    text.replace("\r\n", "\n").trim().to_owned()
}

impl SentLog {
    /// A send of `text` to `chat` starts.
    pub(super) fn begin(&self, chat: &str, text: &str, request_id: Option<&str>) -> SendGuard<'_> {
        self.begin_at(chat, text, request_id, Instant::now())
    }

    fn begin_at(
        &self,
        chat: &str,
        text: &str,
        request_id: Option<&str>,
        now: Instant,
    ) -> SendGuard<'_> {
        let mut key = 0;
        if let Ok(mut sends) = self.sends.lock() {
            sends.next_key += 1;
            key = sends.next_key;
            while sends.recent.front().is_some_and(|r| {
                now.duration_since(r.at) > ECHO_WINDOW || sends.recent.len() >= SENT_MEMORY
            }) {
                sends.recent.pop_front();
            }
            sends.recent.push_back(Recent {
                key,
                chat: chat.to_owned(),
                text: comparable(text),
                request_id: request_id.map(str::to_owned),
                at: now,
                msg_id: None,
            });
            if sends.awaited.len() >= SENT_MEMORY {
                sends.awaited.pop_front();
            }
            sends.awaited.push_back(Awaited {
                key,
                request_id: request_id.map(str::to_owned),
                msg_id: None,
                since: now,
                answered: false,
            });
        }
        self.in_flight.send_modify(|n| *n += 1);
        SendGuard {
            log: self,
            key,
            request_id: request_id.map(str::to_owned),
        }
    }

    /// The send a message with this MsgID echoes, if the bridge sent it. A hit also uses up
    /// the send's claim by content.
    pub(super) fn lookup(&self, msg_id: &str) -> Option<Echo> {
        let mut sends = self.sends.lock().ok()?;
        let request_id = sends.by_msg_id.get(msg_id).cloned()?;
        sends.recent.retain(|r| r.msg_id.as_deref() != Some(msg_id));
        let first = take_awaited(&mut sends.awaited, |a| a.msg_id.as_deref() == Some(msg_id));
        Some(Echo {
            request_id,
            first: first.is_some(),
            msg_id: Some(msg_id.to_owned()),
        })
    }

    /// The oldest recent send of `text` to `chat` whose echo was not seen yet, which this
    /// message from self then is; it is claimed.
    pub(super) fn claim_echo(&self, chat: &str, text: &str) -> Option<Echo> {
        self.claim_echo_at(chat, text, Instant::now())
    }

    fn claim_echo_at(&self, chat: &str, text: &str, now: Instant) -> Option<Echo> {
        let text = comparable(text);
        let mut sends = self.sends.lock().ok()?;
        let at = sends.recent.iter().position(|r| {
            r.chat == chat && r.text == text && now.duration_since(r.at) <= ECHO_WINDOW
        })?;
        let recent = sends.recent.remove(at)?;
        let first = take_awaited(&mut sends.awaited, |a| a.key == recent.key);
        Some(Echo {
            request_id: recent.request_id,
            first: first.is_some(),
            msg_id: first.and_then(|a| a.msg_id),
        })
    }

    /// Takes the answered sends whose echo has not come within [`echo_deadline`] of their
    /// answer; unanswered ones that old are dropped without counting (the result already
    /// said the send may not have gone out).
    pub(super) fn overdue(&self) -> Vec<Missed> {
        self.overdue_at(Instant::now(), echo_deadline())
    }

    fn overdue_at(&self, now: Instant, deadline: Duration) -> Vec<Missed> {
        let mut missed = Vec::new();
        if let Ok(mut sends) = self.sends.lock() {
            sends.awaited.retain(|a| {
                if now.duration_since(a.since) <= deadline {
                    return true;
                }
                if a.answered {
                    missed.push(Missed {
                        request_id: a.request_id.clone(),
                        msg_id: a.msg_id.clone(),
                    });
                }
                false
            });
        }
        missed
    }

    /// Waits (briefly) until no send is waiting for its answer.
    pub(super) async fn settle(&self) {
        let mut rx = self.in_flight.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|n| *n == 0)).await;
    }
}

impl SendGuard<'_> {
    /// The send was answered with `msg_id`, or not answered at all (`None`: it may have gone
    /// out); either way its echo is expected.
    pub(super) fn finish(self, msg_id: Option<&str>) {
        if let (Some(msg_id), Ok(mut sends)) = (msg_id, self.log.sends.lock()) {
            // Not found when an echo claimed it by content before the answer came.
            if let Some(recent) = sends.recent.iter_mut().find(|r| r.key == self.key) {
                recent.msg_id = Some(msg_id.to_owned());
            }
            // Not found either when the echo came first: its receipt went out then.
            if let Some(a) = sends.awaited.iter_mut().find(|a| a.key == self.key) {
                a.msg_id = Some(msg_id.to_owned());
                a.since = Instant::now();
                a.answered = true;
            }
            sends
                .by_msg_id
                .insert(msg_id.to_owned(), self.request_id.clone());
            sends.order.push_back(msg_id.to_owned());
            while sends.order.len() > SENT_MEMORY {
                if let Some(old) = sends.order.pop_front() {
                    sends.by_msg_id.remove(&old);
                }
            }
        }
        self.done();
    }

    /// WeChat refused the send: nothing will be echoed.
    pub(super) fn forget(self) {
        if let Ok(mut sends) = self.log.sends.lock() {
            sends.recent.retain(|r| r.key != self.key);
            sends.awaited.retain(|a| a.key != self.key);
        }
        self.done();
    }

    fn done(self) {
        self.log.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Removes and answers the first awaited send that `is` picks.
fn take_awaited(awaited: &mut VecDeque<Awaited>, is: impl Fn(&Awaited) -> bool) -> Option<Awaited> {
    let at = awaited.iter().position(is)?;
    awaited.remove(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid(echo: Option<Echo>) -> Option<Option<String>> {
        echo.map(|e| e.request_id)
    }

    #[tokio::test]
    async fn a_sent_msg_id_is_remembered_with_its_request_id() {
        let log = SentLog::default();
        let g = log.begin("@a", "hi", Some("r-1"));
        assert_eq!(*log.in_flight.borrow(), 1);
        g.finish(Some("42"));
        log.settle().await;
        assert_eq!(rid(log.lookup("42")), Some(Some("r-1".into())));
        assert_eq!(rid(log.lookup("43")), None);
        log.begin("@a", "x", None).finish(Some("44"));
        assert_eq!(
            rid(log.lookup("44")),
            Some(None),
            "sent without a request_id is still ours"
        );
    }

    #[test]
    fn an_echo_with_a_new_msg_id_is_claimed_by_chat_and_text_once() {
        let log = SentLog::default();
        log.begin("@a", "on my way\r\nsee you ", Some("r-1"))
            .finish(Some("100"));
        assert_eq!(
            rid(log.claim_echo("@b", "on my way\nsee you")),
            None,
            "other chat"
        );
        assert_eq!(rid(log.claim_echo("@a", "on my way")), None, "other text");
        assert_eq!(
            rid(log.claim_echo("@a", "on my way\nsee you")),
            Some(Some("r-1".into()))
        );
        assert_eq!(
            rid(log.claim_echo("@a", "on my way\nsee you")),
            None,
            "a second message with the same text is not the bridge's"
        );
        assert_eq!(rid(log.lookup("100")), Some(Some("r-1".into())));
    }

    #[test]
    fn an_echo_before_the_answer_is_claimed_and_the_answer_keeps_the_request_id() {
        let log = SentLog::default();
        let g = log.begin("@@g", "ping", Some("reply:home:7"));
        assert_eq!(
            rid(log.claim_echo("@@g", "ping")),
            Some(Some("reply:home:7".into()))
        );
        g.finish(Some("200"));
        assert_eq!(rid(log.lookup("200")), Some(Some("reply:home:7".into())));
    }

    #[test]
    fn an_echo_by_msg_id_uses_up_the_claim_by_content() {
        let log = SentLog::default();
        log.begin("@a", "same", None).finish(Some("300"));
        assert_eq!(rid(log.lookup("300")), Some(None));
        assert_eq!(rid(log.claim_echo("@a", "same")), None);
    }

    #[test]
    fn a_media_echo_is_claimed_by_its_kind_and_never_by_a_text() {
        let log = SentLog::default();
        log.begin("@a", &media_echo_key("image"), Some("r-img"))
            .finish(Some("500"));
        assert_eq!(
            rid(log.claim_echo("@a", "image")),
            None,
            "a text named image"
        );
        let key = echo_key_of(MessageType::Image).unwrap();
        assert_eq!(rid(log.claim_echo("@b", &key)), None, "other chat");
        assert_eq!(rid(log.claim_echo("@a", &key)), Some(Some("r-img".into())));
        assert_eq!(echo_key_of(MessageType::Text), None);
    }

    #[test]
    fn refused_sends_and_old_sends_claim_nothing() {
        let log = SentLog::default();
        log.begin("@a", "refused", None).forget();
        assert_eq!(rid(log.claim_echo("@a", "refused")), None);
        log.begin("@a", "unanswered", Some("r-2")).finish(None);
        assert_eq!(
            rid(log.claim_echo("@a", "unanswered")),
            Some(Some("r-2".into())),
            "a send without an answer may have gone out"
        );
        let start = Instant::now();
        log.begin_at("@a", "old", None, start).finish(Some("400"));
        let later = start + ECHO_WINDOW + Duration::from_secs(1);
        assert_eq!(rid(log.claim_echo_at("@a", "old", later)), None);
    }

    #[test]
    fn only_the_first_echo_of_a_send_is_due_a_receipt_with_the_answered_msg_id() {
        let log = SentLog::default();
        log.begin("@a", "hi", Some("r-1")).finish(Some("42"));
        let by_content = log.claim_echo("@a", "hi").unwrap();
        assert!(by_content.first);
        assert_eq!(by_content.msg_id.as_deref(), Some("42"));
        let again = log.lookup("42").unwrap();
        assert!(!again.first, "the same send echoed by its MsgID too");

        log.begin("@a", "yo", Some("r-2")).finish(Some("43"));
        let by_id = log.lookup("43").unwrap();
        assert!(by_id.first);
        assert_eq!(by_id.msg_id.as_deref(), Some("43"));

        let g = log.begin("@a", "early", Some("r-3"));
        let early = log.claim_echo("@a", "early").unwrap();
        assert!(
            early.first && early.msg_id.is_none(),
            "echo before the answer"
        );
        g.finish(Some("44"));
        assert!(!log.lookup("44").unwrap().first);
    }

    #[test]
    fn an_answered_send_without_an_echo_is_overdue_once_after_the_deadline() {
        let log = SentLog::default();
        let start = Instant::now();
        log.begin_at("@a", "lost", Some("r-lost"), start)
            .finish(Some("50"));
        log.begin_at("@a", "maybe", Some("r-maybe"), start)
            .finish(None);
        log.begin_at("@a", "seen", Some("r-seen"), start)
            .finish(Some("51"));
        assert!(log.lookup("51").unwrap().first);
        let deadline = Duration::from_secs(120);
        assert_eq!(log.overdue_at(Instant::now(), deadline), vec![]);
        let later = Instant::now() + deadline + Duration::from_secs(1);
        assert_eq!(
            log.overdue_at(later, deadline),
            vec![Missed {
                request_id: Some("r-lost".into()),
                msg_id: Some("50".into()),
            }],
            "only the answered send without an echo; the unanswered one is not counted"
        );
        assert_eq!(log.overdue_at(later, deadline), vec![], "counted once");
    }
}
