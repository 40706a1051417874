//! The topic names of one account (DESIGN.md "Topics and subjects"), built once.
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

#[cfg(test)]
mod tests {
    use super::*;

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
