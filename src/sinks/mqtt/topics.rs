//! The topic names of one account (DESIGN.md "Topics and subjects"), built once, and the
//! [`Router`] that tells which account an incoming publish is for.
use std::collections::HashMap;

use crate::spool::Kind;

/// Every topic the link uses, `<base>/<account>/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Topics {
    /// `online` / `offline`, retained; the last will.
    pub status: String,
    /// The session state JSON, retained.
    pub state: String,
    /// The login QR JSON, retained while a scan is awaited.
    pub qr: String,
    /// The current login's contacts with their keys, retained.
    pub contacts: String,
    /// The login QR as raw PNG bytes, retained while a scan is awaited.
    pub qr_png: String,
    /// Inbound messages.
    pub message: String,
    /// Login, logout, contacts and error events.
    pub event: String,
    /// Send commands (subscribed).
    pub send: String,
    /// Results of send commands.
    pub send_result: String,
    /// Receipts of send commands.
    pub send_receipt: String,
    /// Re-login requests (subscribed).
    pub relogin: String,
    /// Log-out requests (subscribed; Home Assistant's logout button).
    pub logout: String,
    /// `<base>/<account>/notify/+`: the command topics of Home Assistant's notify entities
    /// (subscribed); see [`Topics::notify`].
    pub notify_filter: String,
    /// `<base>/<account>/media`: media bytes go to `<media>/<sha256>` (see [`Topics::media`]).
    media: String,
    /// The login QR PNG for Home Assistant's image entity: retained and never emptied, because
    /// HA's image proxy answers 500 for an empty image (the entity is unavailable instead).
    pub ha_login_qr: String,
    /// The last inbound image's bytes for Home Assistant's image entity, retained.
    pub ha_last_image: String,
}

impl Topics {
    /// The topics under `<base>/<account>`.
    pub fn new(base: &str, account: &str) -> Topics {
        let t = |leaf: &str| format!("{base}/{account}/{leaf}");
        Topics {
            status: t("status"),
            state: t("state"),
            qr: t("qr"),
            contacts: t("contacts"),
            qr_png: t("qr/png"),
            message: t("message"),
            event: t("event"),
            send: t("send"),
            send_result: t("send/result"),
            send_receipt: t("send/receipt"),
            relogin: t("relogin"),
            logout: t("logout"),
            notify_filter: t("notify/+"),
            media: t("media"),
            ha_login_qr: t("homeassistant/login_qr"),
            ha_last_image: t("homeassistant/last_image"),
        }
    }

    /// The command topic of the notify target with this slug: `<base>/<account>/notify/<slug>`.
    pub fn notify(&self, slug: &str) -> String {
        format!("{}/{slug}", self.notify_prefix())
    }

    /// The slug of a notify command topic, if `topic` is one.
    pub fn notify_slug<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(self.notify_prefix())
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|slug| !slug.is_empty() && !slug.contains('/'))
    }

    /// Where the bytes of a stored file go: `<base>/<account>/media/<sha256>`.
    pub fn media(&self, sha256: &str) -> String {
        format!("{}/{sha256}", self.media)
    }

    fn notify_prefix(&self) -> &str {
        self.notify_filter.trim_end_matches("/+")
    }

    /// Where an entry of this kind is published.
    pub fn for_kind(&self, kind: Kind) -> &str {
        match kind {
            Kind::Message => &self.message,
            Kind::Login | Kind::Logout | Kind::Contacts | Kind::Error => &self.event,
            Kind::Result => &self.send_result,
            Kind::Receipt => &self.send_receipt,
        }
    }
}

/// The process's own availability when it serves several accounts: `<base>/status`, the last
/// will (see the module docs of `mqtt`). Two levels, so it is no account's topic: those have
/// three or more.
pub(super) fn process_status(base: &str) -> String {
    format!("{base}/status")
}

/// Which account a publish on `<base>/<account>/…` is for: the account's position in the
/// list the link serves.
#[derive(Debug)]
pub(super) struct Router {
    /// `<base>/`.
    prefix: String,
    /// Account name → position.
    accounts: HashMap<String, usize>,
}

impl Router {
    /// A router over `accounts`, in the order the link serves them.
    pub fn new<'a>(base: &str, accounts: impl IntoIterator<Item = &'a str>) -> Router {
        Router {
            prefix: format!("{base}/"),
            accounts: accounts
                .into_iter()
                .enumerate()
                .map(|(i, a)| (a.to_owned(), i))
                .collect(),
        }
    }

    /// The position of the account whose topic `topic` is, if it is one of ours. Which of
    /// that account's topics it is, is for the account's own command task to tell.
    pub fn account(&self, topic: &str) -> Option<usize> {
        let rest = topic.strip_prefix(&self.prefix)?;
        let (account, _leaf) = rest.split_once('/')?;
        self.accounts.get(account).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_are_routed_to_the_account_their_topic_names() {
        let r = Router::new("home/wechat", ["home", "office", "home-2"]);
        assert_eq!(r.account("home/wechat/home/send"), Some(0));
        assert_eq!(r.account("home/wechat/office/send"), Some(1));
        assert_eq!(r.account("home/wechat/office/notify/Mom"), Some(1));
        assert_eq!(r.account("home/wechat/home-2/relogin"), Some(2));
        // A name that only starts like an account is another account, or none.
        assert_eq!(r.account("home/wechat/home-3/send"), None);
        assert_eq!(r.account("home/wechat/offic/send"), None);
        assert_eq!(r.account("home/wechat/office"), None, "no leaf");
        assert_eq!(r.account("home/wechat/status"), None, "the process's own");
        assert_eq!(r.account("wechat/home/send"), None, "another base");
        assert_eq!(r.account("homeassistant/status"), None);
        // Every command topic of every account finds its own account, never another.
        for (i, account) in ["home", "office", "home-2"].iter().enumerate() {
            let t = Topics::new("home/wechat", account);
            for topic in [&t.send, &t.relogin, &t.logout, &t.notify("Family_20Group")] {
                assert_eq!(r.account(topic), Some(i), "{topic}");
            }
        }
        assert_eq!(process_status("home/wechat"), "home/wechat/status");
    }

    #[test]
    fn topics_follow_the_design_table() {
        let t = Topics::new("wechat", "home");
        assert_eq!(t.status, "wechat/home/status");
        assert_eq!(t.state, "wechat/home/state");
        assert_eq!(t.qr, "wechat/home/qr");
        assert_eq!(t.qr_png, "wechat/home/qr/png");
        assert_eq!(t.send, "wechat/home/send");
        assert_eq!(t.relogin, "wechat/home/relogin");
        assert_eq!(t.logout, "wechat/home/logout");
        assert_eq!(t.notify("Mom"), "wechat/home/notify/Mom");
        assert_eq!(t.notify_slug("wechat/home/notify/Mom"), Some("Mom"));
        assert_eq!(t.notify_slug("wechat/home/notify/"), None);
        assert_eq!(t.notify_slug("wechat/home/notifyX/Mom"), None);
        assert_eq!(t.notify_slug("wechat/home/send"), None);
        assert_eq!(t.for_kind(Kind::Message), "wechat/home/message");
        assert_eq!(t.media("ab12"), "wechat/home/media/ab12");
        assert_eq!(t.ha_login_qr, "wechat/home/homeassistant/login_qr");
        assert_eq!(t.ha_last_image, "wechat/home/homeassistant/last_image");
        for kind in [Kind::Login, Kind::Logout, Kind::Contacts, Kind::Error] {
            assert_eq!(t.for_kind(kind), "wechat/home/event");
        }
        assert_eq!(t.for_kind(Kind::Result), "wechat/home/send/result");
        assert_eq!(t.for_kind(Kind::Receipt), "wechat/home/send/receipt");
    }
}
