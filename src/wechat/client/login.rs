//! The requests of a login, before there is a session: a QR uuid, the login poll, the ticket
//! that becomes [`Credentials`], and the push login (PROTOCOL.md §1).
use url::Url;

use super::error::garbage;
use super::{now_ms, Credentials, WxClient, WxError};
use crate::wechat::hosts::{cgi, Hosts};
use crate::wechat::protocol::{self, LoginPoll, PushLoginResponse};

impl WxClient {
    /// `jslogin`: a new QR uuid (PROTOCOL.md §1.1).
    pub async fn jslogin(&self) -> Result<String, WxError> {
        let mut redirect = protocol::NEWLOGINPAGE_REDIRECT.to_owned();
        if self.desktop_mode {
            redirect.push_str("?mod=desktop");
        }
        let mut url = self.login_origin.clone();
        url.set_path("/jslogin");
        let req = self
            .http
            .get(url)
            .query(&[
                ("appid", protocol::APP_ID),
                ("redirect_uri", &redirect),
                ("fun", "new"),
                ("lang", "zh_CN"),
                ("_", &now_ms().to_string()),
            ])
            .timeout(self.timeouts.request);
        let req = self.stamp(req, "jslogin", &self.login_page());
        let body = self.ok_text("jslogin", req).await?;
        protocol::parse_jslogin(&body).map_err(garbage("jslogin"))
    }

    /// One login long-poll for `uuid` on `login_origin` (PROTOCOL.md §1.3).
    pub async fn poll_login(
        &self,
        login_origin: Option<&Url>,
        uuid: &str,
        tip: u8,
    ) -> Result<LoginPoll, WxError> {
        let url = cgi(login_origin.unwrap_or(&self.login_origin), "login");
        let ms = now_ms();
        let req = self
            .http
            .get(url)
            .query(&[
                ("loginicon", "true"),
                ("uuid", uuid),
                ("tip", &tip.to_string()),
                ("r", &(!(ms as i32)).to_string()),
                ("_", &ms.to_string()),
            ])
            .timeout(self.timeouts.long_poll);
        let req = self.stamp(req, "login", &self.login_page());
        let body = self.ok_text("login", req).await?;
        protocol::parse_login_poll(&body).map_err(garbage("login"))
    }

    /// `webwxnewloginpage`: the ticket becomes a session (PROTOCOL.md §1.4, §1.5).
    pub async fn new_login_page(&self, redirect_uri: &str) -> Result<Credentials, WxError> {
        let endpoint = "webwxnewloginpage";
        let url =
            login_page_url(redirect_uri, self.desktop_mode).map_err(|e| WxError::Garbage {
                endpoint: "login",
                detail: format!("redirect {redirect_uri:?}: {e}"),
            })?;
        let hosts = Hosts::from_redirect(&url);
        let req = self.http.get(url.clone()).timeout(self.timeouts.request);
        // The desktop-mode headers (PROTOCOL.md §1.5) come from the table with the rest.
        let req = self.stamp(req, endpoint, &super::stamp::origin(&hosts.api));
        let (status, body) = self.text(endpoint, req).await?;
        if !(200..300).contains(&status) {
            return Err(WxError::Status { endpoint, status });
        }
        let ticket = protocol::parse_login_xml(&body)?;
        Ok(Credentials {
            hosts,
            ticket,
            device_id: protocol::new_device_id(),
        })
    }

    /// `webwxpushloginurl`: asks the phone to confirm a login without a scan (PROTOCOL.md §1.6).
    /// Returns the uuid to poll with `tip=1`, or None when WeChat declines.
    pub async fn push_login(&self, hosts: &Hosts, uin: u64) -> Result<Option<String>, WxError> {
        let endpoint = "webwxpushloginurl";
        let mut query = vec![("uin", uin.to_string())];
        if self.desktop_mode {
            query.push(("mod", "desktop".into()));
        }
        let req = self
            .http
            .get(hosts.api_url(endpoint))
            .query(&query)
            .timeout(self.timeouts.request);
        let req = self.stamp(req, endpoint, &super::stamp::origin(&hosts.api));
        let body = self.ok_text(endpoint, req).await?;
        let resp: PushLoginResponse = serde_json::from_str(&body).map_err(garbage(endpoint))?;
        Ok((resp.ret == "0" && !resp.uuid.is_empty()).then_some(resp.uuid))
    }
}

/// The `webwxnewloginpage` URL: the redirect as the login poll returned it, then `fun=new`,
/// `version=v2` and, in desktop mode, `mod=desktop` (PROTOCOL.md §1.4, §1.5). The redirect
/// may already carry the `mod=desktop` jslogin put into its `redirect_uri`; that one is
/// dropped so the parameter goes once, where the official client puts it (the request table).
fn login_page_url(redirect_uri: &str, desktop: bool) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(redirect_uri)?;
    let mut query: Vec<String> = url
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| {
            // In desktop mode a `mod` already there is dropped; it is appended below.
            let appended_below = desktop && p.split('=').next() == Some("mod");
            !p.is_empty() && !appended_below
        })
        .map(str::to_owned)
        .collect();
    query.extend(["fun=new".to_owned(), "version=v2".to_owned()]);
    if desktop {
        query.push("mod=desktop".to_owned());
    }
    url.set_query(Some(&query.join("&")));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::login_page_url;

    const REDIRECT: &str = "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage";

    #[test]
    fn a_redirect_carrying_mod_desktop_gets_it_once_in_the_official_place() {
        let url = login_page_url(
            &format!("{REDIRECT}?mod=desktop&ticket=A%2Bb&uuid=u1&lang=zh_CN&scan=1700000000"),
            true,
        )
        .unwrap();
        assert_eq!(
            url.query(),
            Some("ticket=A%2Bb&uuid=u1&lang=zh_CN&scan=1700000000&fun=new&version=v2&mod=desktop")
        );
        // The ticket stays verbatim; plain web mode adds no mod.
        let url = login_page_url(
            &format!("{REDIRECT}?ticket=A%2Bb&uuid=u1&lang=zh_CN&scan=1"),
            false,
        )
        .unwrap();
        assert_eq!(
            url.query(),
            Some("ticket=A%2Bb&uuid=u1&lang=zh_CN&scan=1&fun=new&version=v2")
        );
        let url = login_page_url(
            &format!("{REDIRECT}?ticket=t&uuid=u1&lang=zh_CN&scan=1"),
            true,
        )
        .unwrap();
        assert_eq!(
            url.query(),
            Some("ticket=t&uuid=u1&lang=zh_CN&scan=1&fun=new&version=v2&mod=desktop")
        );
    }
}
