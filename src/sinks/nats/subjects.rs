//! The subjects of one account (DESIGN.md "Topics and subjects"), built and checked once.
use async_nats::Subject;

use super::NatsError;
use crate::spool::Kind;

/// Every subject the link uses, for `<prefix>.<account>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    /// `<p>.<a>.message`: message events.
    pub message: String,
    /// `<p>.<a>.event`: login, logout, contacts and error events.
    pub event: String,
    /// `<p>.<a>.send.result`: send results.
    pub result: String,
    /// `<p>.<a>.send.receipt`: send receipts.
    pub receipt: String,
    /// `<p>.<a>.state`: the session state, on change.
    pub state: String,
    /// `<p>.<a>.state.get`: requests for the current session state.
    pub state_get: String,
    /// `<p>.<a>.qr`: the login QR, on change.
    pub qr: String,
    /// `<p>.<a>.qr.get`: requests for the current login QR.
    pub qr_get: String,
    /// `<p>.<a>.contacts.get`: requests for the current login's contacts with their keys.
    pub contacts_get: String,
    /// `<p>.<a>.send`: send commands (request-reply).
    pub send: String,
    /// `<p>.<a>.relogin`: re-login requests.
    pub relogin: String,
    /// `<p>.<a>.logout`: end the session at WeChat, forget it, log in afresh.
    pub logout: String,
}

impl Subjects {
    /// The subjects under `<prefix>.<account>`; fails when they would not be valid literal
    /// subjects (empty tokens, whitespace, `*` or `>` anywhere).
    pub fn new(prefix: &str, account: &str) -> Result<Subjects, NatsError> {
        let base = format!("{prefix}.{account}");
        // Subject::validated allows wildcards; these subjects must be literal.
        if base.contains(['*', '>']) || Subject::validated(&base).is_err() {
            return Err(NatsError::Subject {
                prefix: prefix.to_owned(),
                account: account.to_owned(),
            });
        }
        let s = |suffix: &str| format!("{base}.{suffix}");
        Ok(Subjects {
            message: s("message"),
            event: s("event"),
            result: s("send.result"),
            receipt: s("send.receipt"),
            state: s("state"),
            state_get: s("state.get"),
            qr: s("qr"),
            qr_get: s("qr.get"),
            contacts_get: s("contacts.get"),
            send: s("send"),
            relogin: s("relogin"),
            logout: s("logout"),
        })
    }

    /// Where an entry of this kind is published.
    pub fn for_kind(&self, kind: Kind) -> &str {
        match kind {
            Kind::Message => &self.message,
            Kind::Login | Kind::Logout | Kind::Contacts | Kind::Error => &self.event,
            Kind::Result => &self.result,
            Kind::Receipt => &self.receipt,
        }
    }

    /// The subjects of the JetStream stream, exactly these two.
    pub fn stream_subjects(&self) -> [&str; 2] {
        [&self.message, &self.event]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_design_table() {
        let s = Subjects::new("wechat", "home").unwrap();
        assert_eq!(s.for_kind(Kind::Message), "wechat.home.message");
        for kind in [Kind::Login, Kind::Logout, Kind::Contacts, Kind::Error] {
            assert_eq!(s.for_kind(kind), "wechat.home.event");
        }
        assert_eq!(s.for_kind(Kind::Result), "wechat.home.send.result");
        assert_eq!(s.for_kind(Kind::Receipt), "wechat.home.send.receipt");
        assert_eq!(s.send, "wechat.home.send");
        assert_eq!(s.relogin, "wechat.home.relogin");
        assert_eq!(s.logout, "wechat.home.logout");
        assert_eq!(s.state_get, "wechat.home.state.get");
        assert_eq!(s.qr_get, "wechat.home.qr.get");
        assert_eq!(s.contacts_get, "wechat.home.contacts.get");
        assert_eq!(
            s.stream_subjects(),
            ["wechat.home.message", "wechat.home.event"]
        );
    }

    #[test]
    fn a_dotted_prefix_is_fine_but_wildcards_and_empty_tokens_are_not() {
        assert!(Subjects::new("home.wechat", "a_b-c").is_ok());
        for prefix in [
            "", "a..b", "wechat.", "we chat", "wechat.*", "wechat.>", "a*b",
        ] {
            assert!(Subjects::new(prefix, "home").is_err(), "{prefix:?}");
        }
    }
}
