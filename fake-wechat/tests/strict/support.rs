//! A minimal, correct web client built on reqwest, so each test can break one rule at a time.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use wxbridge_fake::{FakeWeChat, Options};

pub const APPID: &str = "wx782c26e4c19acffb";
pub const CGI: &str = "/cgi-bin/mmwebwx-bin";

/// Options with holds short enough for tests. These tests speak the protocol with a bare
/// HTTP client, not as the official client does, so the request table is not checked (its
/// own tests are in `table.rs`).
pub fn fast() -> Options {
    Options {
        poll_hold: Duration::from_millis(200),
        sync_hold: Duration::from_millis(200),
        check_requests: false,
        ..Options::default()
    }
}

pub async fn start() -> FakeWeChat {
    FakeWeChat::start_with(fast()).await
}

/// An HTTP client like the project's: a cookie jar, no redirects followed.
pub fn http(cookies: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The text between `<tag>` and `</tag>`.
pub fn tag(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// The value between `window.redirect_uri="` and `"`.
pub fn redirect_of(body: &str) -> String {
    let start = body.find("window.redirect_uri=\"").expect("redirect") + 21;
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_owned()
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub uin: String,
    pub sid: String,
    pub skey: String,
    pub pass_ticket: String,
    pub me: String,
    pub sync_key: Value,
    pub check_key: Value,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: http(true),
            base: base.to_owned(),
            uin: String::new(),
            sid: String::new(),
            skey: String::new(),
            pass_ticket: String::new(),
            me: String::new(),
            sync_key: Value::Null,
            check_key: Value::Null,
        }
    }

    pub fn cgi(&self, endpoint: &str) -> String {
        format!("{}{CGI}/{endpoint}", self.base)
    }

    pub async fn jslogin(&self) -> String {
        let body = self
            .http
            .get(format!("{}/jslogin", self.base))
            .query(&[("appid", APPID), ("fun", "new"), ("lang", "zh_CN")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let start = body.find("uuid = \"").expect("uuid") + 8;
        body[start..body.len() - 2].to_owned()
    }

    pub async fn poll(&self, uuid: &str) -> String {
        self.http
            .get(self.cgi("login"))
            .query(&[
                ("loginicon", "true"),
                ("uuid", uuid),
                ("tip", "0"),
                ("r", "-1"),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Polls until 200 and returns the redirect.
    pub async fn poll_until_confirmed(&self, uuid: &str) -> String {
        loop {
            let body = self.poll(uuid).await;
            if body.starts_with("window.code=200;") {
                return redirect_of(&body);
            }
            assert!(
                body.starts_with("window.code=408;") || body.starts_with("window.code=201;"),
                "{body}"
            );
        }
    }

    /// GETs the redirect with `fun=new&version=v2` and keeps the credentials.
    pub async fn new_login_page(&mut self, redirect: &str) -> String {
        self.new_login_page_as(redirect, false).await
    }

    /// [`Client::new_login_page`], in desktop mode (§1.5) if `desktop`.
    pub async fn new_login_page_as(&mut self, redirect: &str, desktop: bool) -> String {
        let mut req = self.http.get(format!("{redirect}&fun=new&version=v2"));
        if desktop {
            req = self
                .http
                .get(format!("{redirect}&fun=new&version=v2&mod=desktop"))
                .header("client-version", "2.0.0")
                .header("extspam", wxbridge_fake::EXTSPAM);
        }
        let xml = req.send().await.unwrap().text().await.unwrap();
        self.skey = tag(&xml, "skey").unwrap_or_default();
        self.sid = tag(&xml, "wxsid").unwrap_or_default();
        self.uin = tag(&xml, "wxuin").unwrap_or_default();
        self.pass_ticket = tag(&xml, "pass_ticket").unwrap_or_default();
        xml
    }

    pub fn base_request(&self) -> Value {
        json!({"Uin": self.uin.parse::<u64>().unwrap(), "Sid": self.sid, "Skey": self.skey, "DeviceID": "e123456789012345"})
    }

    /// The text of address book page `seq` (`webwxgetcontact`), asked with this client's cookies.
    pub async fn contact_page(&self, seq: u64) -> String {
        self.http
            .get(self.cgi("webwxgetcontact"))
            .query(&[("r", "1"), ("seq", &seq.to_string()), ("skey", &self.skey)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POSTs JSON the way the official client does (no pass_ticket) and returns the answer.
    pub async fn post(&self, endpoint: &str, body: &Value) -> (HeaderMap, Value) {
        let resp = self
            .http
            .post(self.cgi(endpoint))
            .query(&[("r", "1")])
            .header("content-type", "application/json;charset=UTF-8")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            headers,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    pub async fn init(&mut self) -> Value {
        let (_, v) = self
            .post("webwxinit", &json!({"BaseRequest": self.base_request()}))
            .await;
        assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
        self.me = v["User"]["UserName"].as_str().unwrap().to_owned();
        self.sync_key = v["SyncKey"].clone();
        self.check_key = v["SyncKey"].clone();
        v
    }

    pub async fn synccheck_with(&self, http: &reqwest::Client, key: &Value) -> String {
        let synckey: Vec<String> = key["List"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| format!("{}_{}", k["Key"], k["Val"]))
            .collect();
        http.get(self.cgi("synccheck"))
            .query(&[
                ("r", "1"),
                ("skey", &self.skey),
                ("sid", &self.sid),
                ("uin", &self.uin),
                ("deviceid", "e123456789012345"),
                ("synckey", &synckey.join("|")),
                ("_", "1"),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn synccheck(&self) -> String {
        self.synccheck_with(&self.http, &self.check_key).await
    }

    /// webwxsync with the stored key; keeps the new keys and any new SKey.
    pub async fn sync(&mut self) -> Value {
        let body = json!({"BaseRequest": self.base_request(), "SyncKey": self.sync_key, "rr": -1});
        let (_, v) = self.post("webwxsync", &body).await;
        if v["BaseResponse"]["Ret"] == 0 {
            self.sync_key = v["SyncKey"].clone();
            self.check_key = v["SyncCheckKey"].clone();
            if let Some(s) = v["SKey"].as_str().filter(|s| !s.is_empty()) {
                self.skey = s.to_owned();
            }
        }
        v
    }

    pub async fn send_text(&self, to: &str, text: &str, local_id: Value) -> Value {
        let body = json!({"BaseRequest": self.base_request(), "Msg": {
            "Type": 1, "Content": text, "FromUserName": self.me, "ToUserName": to,
            "LocalID": local_id, "ClientMsgId": local_id}, "Scene": 0});
        self.post("webwxsendmsg", &body).await.1
    }
}

/// A client logged in (QR scan and confirm) and initialised.
pub async fn logged_in(fake: &FakeWeChat) -> Client {
    logged_in_as(fake, false).await
}

/// [`logged_in`], in desktop mode (§1.5) if `desktop`.
pub async fn logged_in_as(fake: &FakeWeChat, desktop: bool) -> Client {
    let mut c = Client::new(&fake.url());
    let uuid = c.jslogin().await;
    let poller = {
        let (http, base) = (c.http.clone(), c.base.clone());
        tokio::spawn(async move {
            let mut p = Client::new(&base);
            p.http = http;
            p.poll_until_confirmed(&uuid).await
        })
    };
    fake.wait_for_login_poll().await;
    fake.scan();
    fake.confirm();
    let redirect = poller.await.unwrap();
    let xml = c.new_login_page_as(&redirect, desktop).await;
    assert!(xml.contains("<ret>0</ret>"), "{xml}");
    c.init().await;
    c
}
