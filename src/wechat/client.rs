//! HTTP I/O of the web protocol: one reqwest client with one cookie jar that honours `Domain=`,
//! so the file and push hosts receive the session cookies (PROTOCOL.md §2). Every endpoint is a
//! method of [`WxClient`]: those of a login in `login`, those that speak for a session in
//! `session`; this file holds the client, its cookie jar and the transport they share.
//! Parsing and decisions are in [`super::protocol`].
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::redirect::Policy;
use reqwest_cookie_store::CookieStoreMutex;
use serde::Serialize;
use url::Url;

use super::hosts::Hosts;
use super::protocol::{BaseRequest, BaseResponse, LoginTicket};

mod body;
mod error;
mod login;
mod media;
mod session;
mod stamp;
mod upload;

use error::{check_ret, garbage};
pub use error::{SendError, WxError};
pub use media::{announced_length, Download, DownloadError, MediaEndpoint, MediaRequest};
pub use upload::{file_md5, MediaMessage, UploadFile, Uploaded};

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
    /// Numbers the uploads' `WU_FILE_<n>` ids, as the web page counts its files.
    upload_seq: Arc<AtomicU64>,
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
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a TLS backend is compiled in");
        WxClient {
            http,
            jar,
            login_origin,
            desktop_mode,
            timeouts,
            upload_seq: Arc::new(AtomicU64::new(0)),
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
        c: &Credentials,
        endpoint: &'static str,
        url: Url,
        query: &[(&str, String)],
        body: impl Serialize,
    ) -> Result<T, WxError>
    where
        T: serde::de::DeserializeOwned + HasBaseResponse,
    {
        let req = self
            .http
            .post(url)
            .query(query)
            .timeout(self.timeouts.request)
            .body(serde_json::to_string(&body).map_err(garbage(endpoint))?);
        let req = self.stamp(req, endpoint, &stamp::origin(&c.hosts.api));
        let text = self.ok_text(endpoint, req).await?;
        let parsed: T = serde_json::from_str(&text).map_err(garbage(endpoint))?;
        check_ret(endpoint, parsed.base_response())?;
        Ok(parsed)
    }
}

/// Answers that carry a `BaseResponse`.
trait HasBaseResponse {
    fn base_response(&self) -> &BaseResponse;
}

#[cfg(test)]
mod tests;
