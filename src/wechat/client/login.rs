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
        let mut url = Url::parse(redirect_uri).map_err(|e| WxError::Garbage {
            endpoint: "login",
            detail: format!("redirect {redirect_uri:?}: {e}"),
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("fun", "new").append_pair("version", "v2");
            if self.desktop_mode {
                q.append_pair("mod", "desktop");
            }
        }
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
