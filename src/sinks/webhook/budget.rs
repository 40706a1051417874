//! `webhooks[].max_replies_per_minute`: how many replies one chat may get in any minute. A
//! receiver that answers every event can meet a chat that answers every message (another bot,
//! or the bridge's own echo when it is not recognised); the budget keeps such a loop from
//! sending as fast as the throttle allows, which would get the account restricted.
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The window the budget counts over.
const WINDOW: Duration = Duration::from_secs(60);
/// Past this many chats tracked, chats with no reply in the window are forgotten.
const TIDY_ABOVE: usize = 1024;

/// Replies sent per chat within the last minute.
#[derive(Debug)]
pub(super) struct ReplyBudget {
    per_minute: u32,
    sent: HashMap<String, VecDeque<Instant>>,
}

impl ReplyBudget {
    /// A budget of `per_minute` replies per chat (0: none at all).
    pub(super) fn new(per_minute: u32) -> ReplyBudget {
        ReplyBudget {
            per_minute,
            sent: HashMap::new(),
        }
    }

    /// The most replies one chat may get in a minute.
    pub(super) fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Takes one reply to `chat` at `now` if the budget allows it; false when it is spent.
    pub(super) fn take(&mut self, chat: &str, now: Instant) -> bool {
        if self.sent.len() > TIDY_ABOVE {
            self.sent.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        let times = self.sent.entry(chat.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= self.per_minute as usize {
            return false;
        }
        times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chat_gets_its_own_budget_per_minute() {
        let mut budget = ReplyBudget::new(2);
        let t0 = Instant::now();
        assert!(budget.take("@a", t0));
        assert!(budget.take("@a", t0 + Duration::from_secs(1)));
        assert!(!budget.take("@a", t0 + Duration::from_secs(2)));
        assert!(
            budget.take("@b", t0 + Duration::from_secs(2)),
            "another chat"
        );
        assert!(
            !budget.take("@a", t0 + Duration::from_secs(59)),
            "a refused reply does not count, but the window has not moved"
        );
        assert!(budget.take("@a", t0 + Duration::from_secs(60)));
        assert!(!budget.take("@a", t0 + Duration::from_secs(60)));
    }

    #[test]
    fn zero_allows_no_reply() {
        let mut budget = ReplyBudget::new(0);
        assert!(!budget.take("@a", Instant::now()));
    }

    #[test]
    fn idle_chats_are_forgotten() {
        let mut budget = ReplyBudget::new(1);
        let t0 = Instant::now();
        for i in 0..=TIDY_ABOVE {
            assert!(budget.take(&format!("@{i}"), t0));
        }
        assert!(budget.take("@new", t0 + WINDOW));
        assert_eq!(budget.sent.len(), 1);
    }
}
