//! HTTP I/O of the web protocol: one reqwest client with one cookie jar that honours `Domain=`,
//! so the file and push hosts receive the session cookies (PROTOCOL.md §2). Every endpoint is a
//! method here; parsing and decisions are in [`super::protocol`].
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderValue, REFERER};
use reqwest::redirect::Policy;
use reqwest_cookie_store::CookieStoreMutex;
use serde::Serialize;
use serde_json::json;
use url::Url;

use super::hosts::{cgi, Hosts};
use super::protocol::{
    self, BaseRequest, BaseResponse, BatchContactResponse, BatchItem, Contact, GetContactResponse,
    InitResponse, LoginPoll, LoginTicket, PushLoginResponse, SendMsgResponse, SyncCheck, SyncKey,
    SyncResponse,
};

mod body;
mod error;

use error::check_ret;
pub use error::{SendError, WxError};

/// What a request needs to speak for a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Credentials {
    /// Where each role lives.
    pub hosts: Hosts,
    /// skey, wxsid, wxuin, pass_ticket.
    pub ticket: LoginTicket,
    /// `e` + 15 digits, kept for the session (as itchat does).
    pub device_id: String,
}

impl Credentials {
    fn base_request(&self) -> BaseRequest {
        BaseRequest {
            uin: self.ticket.wxuin,
            sid: self.ticket.wxsid.clone(),
            skey: self.ticket.skey.clone(),
            device_id: self.device_id.clone(),
        }
    }
}

/// Timeouts of the client.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Ordinary requests.
    pub request: Duration,
    /// The login poll and synccheck, which the server holds about 25 s.
    pub long_poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            request: Duration::from_secs(30),
            long_poll: Duration::from_secs(35),
        }
    }
}

/// The HTTP side of the protocol. Cheap to clone; clones share the cookie jar.
#[derive(Clone)]
pub struct WxClient {
    http: reqwest::Client,
    jar: Arc<CookieStoreMutex>,
    login_origin: Url,
    desktop_mode: bool,
    timeouts: Timeouts,
}

impl std::fmt::Debug for WxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WxClient")
            .field("login_origin", &self.login_origin.as_str())
            .field("desktop_mode", &self.desktop_mode)
            .finish()
    }
}

/// `host[:port]` of a URL: what a transport error may name.
fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl WxClient {
    /// A client for the login host `login_origin` (`wechat.login_url`).
    pub fn new(login_origin: Url, desktop_mode: bool, timeouts: Timeouts) -> WxClient {
        Self::with_jar(login_origin, desktop_mode, timeouts, Default::default())
    }

    fn with_jar(
        login_origin: Url,
        desktop_mode: bool,
        timeouts: Timeouts,
        store: cookie_store::CookieStore,
    ) -> WxClient {
        let jar = Arc::new(CookieStoreMutex::new(store));
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            // newloginpage must not be followed (PROTOCOL.md §1.4); nothing else redirects.
            .redirect(Policy::none())
            .user_agent(protocol::USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a TLS backend is compiled in");
        WxClient {
            http,
            jar,
            login_origin,
            desktop_mode,
            timeouts,
        }
    }

    /// Replaces the cookie jar with cookies saved by [`WxClient::save_cookies`].
    pub fn restore_cookies(&self, saved: &serde_json::Value) -> Result<(), String> {
        let text = serde_json::to_string(saved).map_err(|e| e.to_string())?;
        let store =
            cookie_store::serde::json::load_all(text.as_bytes()).map_err(|e| e.to_string())?;
        *self.jar.lock().map_err(|e| e.to_string())? = store;
        Ok(())
    }

    /// Every cookie with its domain, session cookies included (a plain `save` drops them).
    pub fn save_cookies(&self) -> serde_json::Value {
        let mut out = Vec::new();
        if let Ok(store) = self.jar.lock() {
            let _ =
                cookie_store::serde::json::save_incl_expired_and_nonpersistent(&store, &mut out);
        }
        serde_json::from_slice(&out).unwrap_or(serde_json::Value::Array(Vec::new()))
    }

    /// Forgets every cookie.
    pub fn clear_cookies(&self) {
        if let Ok(mut store) = self.jar.lock() {
            store.clear();
        }
    }

    /// The value of a cookie the jar would send to `url`.
    pub fn cookie_for(&self, url: &Url, name: &str) -> Option<String> {
        let store = self.jar.lock().ok()?;
        let value = store
            .matches(url)
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned());
        value
    }

    async fn text(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, String), WxError> {
        // Without the URL: its query carries skey, sid and pass_ticket, and this error is logged.
        let http = |source: reqwest::Error| WxError::Http {
            endpoint,
            host: source.url().map(host_of).unwrap_or_default(),
            source: source.without_url(),
        };
        let resp = req.send().await.map_err(http)?;
        let status = resp.status().as_u16();
        // Bytes, not `text()`: that decodes into a second copy of the whole answer, and a
        // large account's webwxbatchgetcontact answers run to megabytes. Every answer is UTF-8
        // (PROTOCOL.md §2), so this is normally no copy; a stray invalid byte is replaced.
        let body = Vec::from(resp.bytes().await.map_err(http)?);
        let body = String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok((status, body))
    }

    async fn ok_text(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<String, WxError> {
        match self.text(endpoint, req).await? {
            (200..=299, body) => Ok(body),
            (status, _) => Err(WxError::Status { endpoint, status }),
        }
    }

    /// POSTs a JSON body and decodes the answer, turning a session-ending Ret into
    /// [`WxError::SessionExpired`] and other non-zero Rets into [`WxError::Ret`].
    async fn post_json<T>(
        &self,
        endpoint: &'static str,
        url: Url,
        query: &[(&str, String)],
        body: serde_json::Value,
    ) -> Result<T, WxError>
    where
        T: serde::de::DeserializeOwned + HasBaseResponse,
    {
        let req = self
            .http
            .post(url)
            .query(query)
            .timeout(self.timeouts.request)
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(body.to_string());
        let text = self.ok_text(endpoint, req).await?;
        let parsed: T = serde_json::from_str(&text).map_err(|e| WxError::Garbage {
            endpoint,
            detail: e.to_string(),
        })?;
        check_ret(endpoint, parsed.base_response())?;
        Ok(parsed)
    }

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
        let body = self.ok_text("jslogin", req).await?;
        protocol::parse_jslogin(&body).map_err(|e| WxError::Garbage {
            endpoint: "jslogin",
            detail: e.to_string(),
        })
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
        let body = self.ok_text("login", req).await?;
        protocol::parse_login_poll(&body).map_err(|e| WxError::Garbage {
            endpoint: "login",
            detail: e.to_string(),
        })
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
        let mut req = self.http.get(url.clone()).timeout(self.timeouts.request);
        if self.desktop_mode {
            let mut headers = HeaderMap::new();
            headers.insert(
                "client-version",
                HeaderValue::from_static(protocol::CLIENT_VERSION),
            );
            headers.insert("extspam", HeaderValue::from_static(protocol::EXTSPAM));
            headers.insert(
                REFERER,
                HeaderValue::from_static("https://wx.qq.com/?&lang=zh_CN&target=t"),
            );
            req = req.headers(headers);
        }
        let (status, body) = self.text(endpoint, req).await?;
        if !(200..300).contains(&status) {
            return Err(WxError::Status { endpoint, status });
        }
        let ticket = protocol::parse_login_xml(&body)?;
        Ok(Credentials {
            hosts: Hosts::from_redirect(&url),
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
        let body = self.ok_text(endpoint, req).await?;
        let resp: PushLoginResponse =
            serde_json::from_str(&body).map_err(|e| WxError::Garbage {
                endpoint,
                detail: e.to_string(),
            })?;
        Ok((resp.ret == "0" && !resp.uuid.is_empty()).then_some(resp.uuid))
    }

    fn session_query(c: &Credentials) -> Vec<(&'static str, String)> {
        vec![
            ("lang", "zh_CN".into()),
            ("pass_ticket", c.ticket.pass_ticket.clone()),
        ]
    }

    /// `webwxinit` (PROTOCOL.md §3).
    pub async fn init(&self, c: &Credentials) -> Result<InitResponse, WxError> {
        let mut q = Self::session_query(c);
        q.push(("r", (!(now_ms() as i32)).to_string()));
        self.post_json(
            "webwxinit",
            c.hosts.api_url("webwxinit"),
            &q,
            json!({ "BaseRequest": c.base_request() }),
        )
        .await
    }

    /// `webwxstatusnotify` Code 3, sent once after init (PROTOCOL.md §4).
    pub async fn status_notify(&self, c: &Credentials, self_name: &str) -> Result<(), WxError> {
        let _: OnlyBase = self
            .post_json(
                "webwxstatusnotify",
                c.hosts.api_url("webwxstatusnotify"),
                &Self::session_query(c),
                json!({
                    "BaseRequest": c.base_request(),
                    "Code": 3,
                    "FromUserName": self_name,
                    "ToUserName": self_name,
                    "ClientMsgId": now_ms(),
                }),
            )
            .await?;
        Ok(())
    }

    /// The whole address book: `webwxgetcontact` paged by Seq until 0 (PROTOCOL.md §5.1). Stops
    /// also when a Seq repeats, as openwechat does, so a misbehaving server cannot loop us.
    pub async fn get_all_contacts(&self, c: &Credentials) -> Result<Vec<Contact>, WxError> {
        let endpoint = "webwxgetcontact";
        let mut seq = 0u64;
        let mut seen = std::collections::HashSet::new();
        let mut all = Vec::new();
        loop {
            let mut q = Self::session_query(c);
            q.push(("r", now_ms().to_string()));
            q.push(("seq", seq.to_string()));
            q.push(("skey", c.ticket.skey.clone()));
            let req = self
                .http
                .get(c.hosts.api_url(endpoint))
                .query(&q)
                .timeout(self.timeouts.request);
            let text = self.ok_text(endpoint, req).await?;
            let page: GetContactResponse =
                serde_json::from_str(&text).map_err(|e| WxError::Garbage {
                    endpoint,
                    detail: e.to_string(),
                })?;
            check_ret(endpoint, &page.base_response)?;
            all.extend(page.member_list);
            if page.seq == 0 || !seen.insert(page.seq) {
                return Ok(all);
            }
            seq = page.seq;
        }
    }

    /// `webwxbatchgetcontact`, in calls of at most 50 (PROTOCOL.md §5.2).
    pub async fn batch_get_contacts(
        &self,
        c: &Credentials,
        items: &[BatchItem],
    ) -> Result<Vec<Contact>, WxError> {
        let endpoint = "webwxbatchgetcontact";
        let mut out = Vec::with_capacity(items.len());
        let mut buf = Vec::new();
        for chunk in items.chunks(protocol::BATCH_CONTACT_MAX) {
            let body =
                json!({ "BaseRequest": c.base_request(), "Count": chunk.len(), "List": chunk });
            let req = self
                .http
                .post(c.hosts.api_url(endpoint))
                .query(&[
                    ("type", "ex".into()),
                    ("r", now_ms().to_string()),
                    ("lang", "zh_CN".into()),
                    ("pass_ticket", c.ticket.pass_ticket.clone()),
                ])
                .timeout(self.timeouts.request)
                .header("Content-Type", "application/json;charset=UTF-8")
                .body(body.to_string());
            // Sequential, as every known client fetches them (PROTOCOL.md §5.2 names no
            // parallel calls), and it keeps one answer at a time in memory.
            body::read_into(endpoint, req, &mut buf).await?;
            let resp: BatchContactResponse =
                serde_json::from_slice(&buf).map_err(|e| WxError::Garbage {
                    endpoint,
                    detail: e.to_string(),
                })?;
            check_ret(endpoint, &resp.base_response)?;
            out.extend(resp.contact_list);
        }
        Ok(out)
    }

    /// One `synccheck` long-poll on the push host (PROTOCOL.md §6). The key is the
    /// SyncCheckKey when there is one, else the SyncKey.
    pub async fn synccheck(
        &self,
        c: &Credentials,
        key: &SyncKey,
        counter: u64,
    ) -> Result<SyncCheck, WxError> {
        let endpoint = "synccheck";
        let req = self
            .http
            .get(c.hosts.push_url(endpoint))
            .query(&[
                ("r", now_ms().to_string()),
                ("skey", c.ticket.skey.clone()),
                ("sid", c.ticket.wxsid.clone()),
                ("uin", c.ticket.wxuin.to_string()),
                ("deviceid", c.device_id.clone()),
                ("synckey", key.to_query()),
                ("_", counter.to_string()),
            ])
            .timeout(self.timeouts.long_poll);
        let body = self.ok_text(endpoint, req).await?;
        let check = protocol::parse_synccheck(&body).map_err(|e| WxError::Garbage {
            endpoint,
            detail: e.to_string(),
        })?;
        match check.action() {
            protocol::SyncAction::SessionExpired(code) => Err(WxError::SessionExpired {
                endpoint,
                code: code.into(),
            }),
            _ => Ok(check),
        }
    }

    /// `webwxsync`: the messages after `key` (PROTOCOL.md §7).
    pub async fn sync(&self, c: &Credentials, key: &SyncKey) -> Result<SyncResponse, WxError> {
        let endpoint = "webwxsync";
        let req = self
            .http
            .post(c.hosts.api_url(endpoint))
            .query(&[
                ("sid", c.ticket.wxsid.clone()),
                ("skey", c.ticket.skey.clone()),
                ("lang", "zh_CN".into()),
                ("pass_ticket", c.ticket.pass_ticket.clone()),
            ])
            .timeout(self.timeouts.request)
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(
                json!({
                    "BaseRequest": c.base_request(),
                    "SyncKey": key,
                    "rr": !((now_ms() / 1000) as i32),
                })
                .to_string(),
            );
        let text = self.ok_text(endpoint, req).await?;
        let resp = protocol::parse_sync_response(&text).map_err(|e| WxError::Garbage {
            endpoint,
            detail: e.to_string(),
        })?;
        check_ret(endpoint, &resp.base_response)?;
        Ok(resp)
    }

    /// `webwxsendmsg`: sends a text; answers WeChat's MsgID (PROTOCOL.md §9.1).
    pub async fn send_text(
        &self,
        c: &Credentials,
        from: &str,
        to: &str,
        text: &str,
        client_msg_id: &str,
    ) -> Result<String, SendError> {
        let endpoint = "webwxsendmsg";
        let req = self
            .http
            .post(c.hosts.api_url(endpoint))
            .query(&Self::session_query(c))
            .timeout(self.timeouts.request)
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(
                json!({
                    "BaseRequest": c.base_request(),
                    "Msg": {
                        "Type": 1,
                        "Content": text,
                        "FromUserName": from,
                        "ToUserName": to,
                        "LocalID": client_msg_id,
                        "ClientMsgId": client_msg_id,
                    },
                    "Scene": 0,
                })
                .to_string(),
            );
        let body = self
            .ok_text(endpoint, req)
            .await
            .map_err(SendError::Transport)?;
        let resp: SendMsgResponse = serde_json::from_str(&body).map_err(|e| {
            SendError::Transport(WxError::Garbage {
                endpoint,
                detail: e.to_string(),
            })
        })?;
        match resp.base_response.ret {
            0 if !resp.msg_id.is_empty() => Ok(resp.msg_id),
            0 => Err(SendError::Transport(WxError::Garbage {
                endpoint,
                detail: "Ret 0 without a MsgID".into(),
            })),
            ret if protocol::ret_ends_session(ret) => Err(SendError::SessionExpired(ret)),
            1204 => Err(SendError::ToSelf),
            1205 => Err(SendError::TooFrequent),
            ret => Err(SendError::Rejected {
                ret,
                message: resp.base_response.err_msg,
            }),
        }
    }

    /// `webwxlogout` (PROTOCOL.md §10). The answer is a redirect or HTML; only the status matters.
    pub async fn logout(&self, c: &Credentials) -> Result<(), WxError> {
        let endpoint = "webwxlogout";
        let req = self
            .http
            .post(c.hosts.api_url(endpoint))
            .query(&[
                ("redirect", "1".to_owned()),
                ("type", "0".to_owned()),
                ("skey", c.ticket.skey.clone()),
            ])
            .form(&[
                ("sid", c.ticket.wxsid.clone()),
                ("uin", c.ticket.wxuin.to_string()),
            ])
            .timeout(self.timeouts.request);
        match self.text(endpoint, req).await? {
            (200..=399, _) => Ok(()),
            (status, _) => Err(WxError::Status { endpoint, status }),
        }
    }
}

/// Answers that carry a `BaseResponse`.
trait HasBaseResponse {
    fn base_response(&self) -> &BaseResponse;
}

impl HasBaseResponse for InitResponse {
    fn base_response(&self) -> &BaseResponse {
        &self.base_response
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct OnlyBase {
    base_response: BaseResponse,
}

impl HasBaseResponse for OnlyBase {
    fn base_response(&self) -> &BaseResponse {
        &self.base_response
    }
}

#[cfg(test)]
mod tests;
