//! The requests that speak for a session with its [`Credentials`]: init, status notify, the
//! contacts, synccheck and webwxsync, sending and logging out (PROTOCOL.md §3–§10).
use serde_json::json;

use super::error::{check_ret, garbage};
use super::stamp::origin;
use super::{now_ms, Credentials, HasBaseResponse, SendError, WxClient, WxError};
use crate::wechat::protocol::{
    self, BaseResponse, BatchContactResponse, BatchItem, Contact, GetContactResponse, InitResponse,
    SendMsgResponse, SyncCheck, SyncKey, SyncResponse,
};

impl WxClient {
    pub(super) fn session_query(c: &Credentials) -> Vec<(&'static str, String)> {
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
            c,
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
                c,
                "webwxstatusnotify",
                c.hosts.api_url("webwxstatusnotify"),
                &Self::session_query(c),
                StatusNotify {
                    base_request: c.base_request(),
                    code: 3,
                    from_user_name: self_name,
                    to_user_name: self_name,
                    client_msg_id: now_ms(),
                },
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
            let req = self.stamp(req, endpoint, &origin(&c.hosts.api));
            let text = self.ok_text(endpoint, req).await?;
            let page: GetContactResponse =
                serde_json::from_str(&text).map_err(garbage(endpoint))?;
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
                .body(body.to_string());
            let req = self.stamp(req, endpoint, &origin(&c.hosts.api));
            // Sequential, as every known client fetches them (PROTOCOL.md §5.2 names no
            // parallel calls), and it keeps one answer at a time in memory.
            super::body::read_into(endpoint, req, &mut buf).await?;
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
        let req = self.stamp(req, endpoint, &origin(&c.hosts.api));
        let body = self.ok_text(endpoint, req).await?;
        let check = protocol::parse_synccheck(&body).map_err(garbage(endpoint))?;
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
            .body(
                json!({
                    "BaseRequest": c.base_request(),
                    "SyncKey": key,
                    "rr": !((now_ms() / 1000) as i32),
                })
                .to_string(),
            );
        let req = self.stamp(req, endpoint, &origin(&c.hosts.api));
        let text = self.ok_text(endpoint, req).await?;
        let resp = protocol::parse_sync_response(&text).map_err(garbage(endpoint))?;
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
            .body(send_body(
                c,
                TextMsg {
                    kind: 1,
                    content: text,
                    from_user_name: from,
                    to_user_name: to,
                    local_id: client_msg_id,
                    client_msg_id,
                },
            ));
        let req = self.stamp(req, endpoint, &origin(&c.hosts.api));
        self.send_answer(endpoint, req).await
    }

    /// Posts a send and maps its answer: the MsgID, or why not (PROTOCOL.md §9.1, §11).
    pub(super) async fn send_answer(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<String, SendError> {
        let body = self
            .ok_text(endpoint, req)
            .await
            .map_err(SendError::Transport)?;
        let resp: SendMsgResponse = serde_json::from_str(&body)
            .map_err(garbage(endpoint))
            .map_err(SendError::Transport)?;
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
        let req = self.stamp(req, endpoint, &origin(&c.hosts.api));
        match self.text(endpoint, req).await? {
            (200..=399, _) => Ok(()),
            (status, _) => Err(WxError::Status { endpoint, status }),
        }
    }
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

/// The body of a send, `{BaseRequest, Msg, Scene: 0}`. Bodies whose member order matters are
/// structs, not `json!` objects: those sort their members, and the official client sends them
/// in the request table's order.
pub(super) fn send_body(c: &Credentials, msg: impl serde::Serialize) -> String {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Envelope<M> {
        base_request: protocol::BaseRequest,
        msg: M,
        scene: u32,
    }
    let envelope = Envelope {
        base_request: c.base_request(),
        msg,
        scene: 0,
    };
    // Strings and numbers only: serialising them cannot fail.
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// The body of `webwxstatusnotify`, its members in the official order (PROTOCOL.md §4).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct StatusNotify<'a> {
    base_request: protocol::BaseRequest,
    code: u32,
    from_user_name: &'a str,
    to_user_name: &'a str,
    client_msg_id: u64,
}

/// The `Msg` of `webwxsendmsg`, its members in the official order (PROTOCOL.md §9.1).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TextMsg<'a> {
    #[serde(rename = "Type")]
    kind: u32,
    content: &'a str,
    from_user_name: &'a str,
    to_user_name: &'a str,
    #[serde(rename = "LocalID")]
    local_id: &'a str,
    client_msg_id: &'a str,
}
