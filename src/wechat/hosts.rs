//! Which host serves which role (PROTOCOL.md §0): the API host comes from the login redirect,
//! and the login, file and push hosts derive from it by the web client's substring table.
use serde::{Deserialize, Serialize};
use url::Url;

/// The origins (scheme, host, port) of a session's four roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hosts {
    /// Everything but login, files and synccheck.
    pub api: Url,
    /// jslogin, the login poll.
    pub login: Url,
    /// Uploads and attachment downloads.
    pub file: Url,
    /// synccheck.
    pub push: Url,
}

/// The web client's table: the first row whose needle the API host contains wins.
const TABLE: &[(&str, &str, &str, &str)] = &[
    (
        "wx2.qq.com",
        "login.wx2.qq.com",
        "file.wx2.qq.com",
        "webpush.wx2.qq.com",
    ),
    (
        "wx8.qq.com",
        "login.wx8.qq.com",
        "file.wx8.qq.com",
        "webpush.wx8.qq.com",
    ),
    (
        "qq.com",
        "login.wx.qq.com",
        "file.wx.qq.com",
        "webpush.wx.qq.com",
    ),
    (
        "web2.wechat.com",
        "login.web2.wechat.com",
        "file.web2.wechat.com",
        "webpush.web2.wechat.com",
    ),
    (
        "wechat.com",
        "login.web.wechat.com",
        "file.web.wechat.com",
        "webpush.web.wechat.com",
    ),
];

impl Hosts {
    /// Derives the roles from the URL the login poll redirected to. A host not in the table
    /// serves every role itself (DESIGN.md "Hosts"), unlike the web client's default row: that
    /// is what lets one local server stand in for all of WeChat.
    pub fn from_redirect(redirect: &Url) -> Hosts {
        let mut origin = redirect.clone();
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);
        let host = origin.host_str().unwrap_or_default().to_owned();
        let with_host = |h: &str| {
            let mut u = origin.clone();
            // set_host only fails for a cannot-be-a-base URL, which an http(s) origin is not.
            let _ = u.set_host(Some(h));
            u
        };
        match TABLE.iter().find(|row| host.contains(row.0)) {
            Some(&(_, login, file, push)) => Hosts {
                api: origin.clone(),
                login: with_host(login),
                file: with_host(file),
                push: with_host(push),
            },
            None => Hosts {
                api: origin.clone(),
                login: origin.clone(),
                file: origin.clone(),
                push: origin,
            },
        }
    }

    /// `https://<api>/cgi-bin/mmwebwx-bin/<name>`.
    pub fn api_url(&self, name: &str) -> Url {
        cgi(&self.api, name)
    }

    /// The synccheck URL on the push host.
    pub fn push_url(&self, name: &str) -> Url {
        cgi(&self.push, name)
    }
}

/// `<origin>/cgi-bin/mmwebwx-bin/<name>`.
pub fn cgi(origin: &Url, name: &str) -> Url {
    let mut u = origin.clone();
    u.set_path(&format!("/cgi-bin/mmwebwx-bin/{name}"));
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(redirect: &str) -> Hosts {
        Hosts::from_redirect(&Url::parse(redirect).unwrap())
    }

    fn names(h: &Hosts) -> [String; 4] {
        [&h.api, &h.login, &h.file, &h.push].map(|u| u.host_str().unwrap().to_owned())
    }

    #[test]
    fn every_row_of_the_host_table_derives_its_helpers() {
        let cases = [
            (
                "wx.qq.com",
                [
                    "wx.qq.com",
                    "login.wx.qq.com",
                    "file.wx.qq.com",
                    "webpush.wx.qq.com",
                ],
            ),
            (
                "wx2.qq.com",
                [
                    "wx2.qq.com",
                    "login.wx2.qq.com",
                    "file.wx2.qq.com",
                    "webpush.wx2.qq.com",
                ],
            ),
            (
                "wx8.qq.com",
                [
                    "wx8.qq.com",
                    "login.wx8.qq.com",
                    "file.wx8.qq.com",
                    "webpush.wx8.qq.com",
                ],
            ),
            (
                "web.wechat.com",
                [
                    "web.wechat.com",
                    "login.web.wechat.com",
                    "file.web.wechat.com",
                    "webpush.web.wechat.com",
                ],
            ),
            (
                "web2.wechat.com",
                [
                    "web2.wechat.com",
                    "login.web2.wechat.com",
                    "file.web2.wechat.com",
                    "webpush.web2.wechat.com",
                ],
            ),
        ];
        for (api, want) in cases {
            let h = hosts(&format!(
                "https://{api}/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T@qrticket_0&uuid=U=="
            ));
            assert_eq!(names(&h), want.map(str::to_owned), "api host {api}");
            assert_eq!(h.api.scheme(), "https");
        }
    }

    #[test]
    fn an_unknown_host_serves_every_role_itself_with_its_port() {
        let h = hosts("http://127.0.0.1:41234/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=T");
        for u in [&h.api, &h.login, &h.file, &h.push] {
            assert_eq!(u.as_str(), "http://127.0.0.1:41234/");
        }
        assert_eq!(
            h.push_url("synccheck").as_str(),
            "http://127.0.0.1:41234/cgi-bin/mmwebwx-bin/synccheck"
        );
    }
}
