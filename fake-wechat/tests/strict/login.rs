//! Login (§1): the happy path end to end, then each login rule a client can break.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use wxbridge_fake::{FakeWeChat, Msg, Options, EXTSPAM};

use crate::support::{fast, http, logged_in, redirect_of, start, tag, Client, APPID, CGI};

#[tokio::test]
async fn a_correct_client_goes_from_qr_to_send() {
    let fake = FakeWeChat::start_with(Options {
        contact_page_size: 2,
        ..fast()
    })
    .await;
    let mut c = Client::new(&fake.url());

    // jslogin: exact JS text
    let body = c
        .http
        .get(format!("{}/jslogin", c.base))
        .query(&[
            ("appid", APPID),
            (
                "redirect_uri",
                "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?mod=desktop",
            ),
            ("fun", "new"),
            ("lang", "zh_CN"),
            ("_", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(body.headers()["content-type"], "text/javascript");
    let body = body.text().await.unwrap();
    assert!(
        body.starts_with("window.QRLogin.code = 200; window.QRLogin.uuid = \""),
        "{body}"
    );
    let uuid = body[body.find("uuid = \"").unwrap() + 8..body.len() - 2].to_owned();
    assert!(uuid.ends_with("==") && uuid.len() == 12, "{uuid}");
    assert!(fake.requests("jslogin")[0].query["redirect_uri"].contains("mod=desktop"));

    // 408 after the hold, 201 on scan, 200 on confirm
    let t = Instant::now();
    assert_eq!(c.poll(&uuid).await, "window.code=408;");
    assert!(t.elapsed() >= Duration::from_millis(190));
    assert_eq!(fake.wait_for_login_poll().await, uuid);
    fake.scan();
    assert_eq!(
        c.poll(&uuid).await,
        "window.code=201;window.userAvatar = 'data:img/jpg;base64,AAAA';"
    );
    fake.confirm();
    let body = c.poll(&uuid).await;
    assert!(
        body.starts_with("window.code=200;\nwindow.redirect_uri=\""),
        "{body}"
    );
    let redirect = redirect_of(&body);
    assert!(redirect.starts_with(&format!("{}{CGI}/webwxnewloginpage?ticket=", fake.url())));
    assert!(redirect.contains("@qrticket_0&uuid=") && redirect.contains("&lang=zh_CN&scan="));

    // newloginpage: XML, cookies host-only and Secure
    let resp = c
        .http
        .get(format!("{redirect}&fun=new&version=v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain;charset=utf-8");
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    for name in [
        "wxuin",
        "wxsid",
        "webwx_data_ticket",
        "webwxuvid",
        "webwx_auth_ticket",
        "wxloadtime",
        "mm_lang",
    ] {
        let c = cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name}"));
        assert!(
            c.contains("Path=/") && c.contains("Secure") && !c.contains("Domain"),
            "{c}"
        );
    }
    let xml = resp.text().await.unwrap();
    c.skey = tag(&xml, "skey").unwrap();
    c.sid = tag(&xml, "wxsid").unwrap();
    c.uin = tag(&xml, "wxuin").unwrap();
    c.pass_ticket = tag(&xml, "pass_ticket").unwrap();
    assert!(
        c.skey.starts_with("@crypt_") && c.pass_ticket.contains("%2B"),
        "{xml}"
    );
    assert_eq!(fake.logins(), 1);

    // init
    let init = c.init().await;
    assert_eq!(init["SyncKey"]["Count"], 4);
    assert_eq!(init["User"]["UserName"], fake.self_user().user_name);
    assert_eq!(init["InviteStartCount"], 40);
    let group = init["ContactList"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["UserName"].as_str().unwrap().starts_with("@@"))
        .unwrap();
    assert!(
        group["MemberCount"].as_u64().unwrap() > 0
            && group["MemberList"].as_array().unwrap().is_empty()
    );
    let (_, notify) = c.post("webwxstatusnotify", &json!({"BaseRequest": c.base_request(), "Code": 3, "FromUserName": c.me, "ToUserName": c.me, "ClientMsgId": 1})).await;
    assert_eq!(notify["BaseResponse"]["Ret"], 0);

    // getcontact in pages of 2
    let mut seq = 0;
    let mut all = Vec::new();
    loop {
        let v: serde_json::Value = serde_json::from_str(&c.contact_page(seq).await).unwrap();
        assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
        let page = v["MemberList"].as_array().unwrap().clone();
        assert!(page.len() <= 2);
        all.extend(page);
        seq = v["Seq"].as_u64().unwrap();
        if seq == 0 {
            break;
        }
    }
    assert!(all.len() >= 6, "seeded address book");
    let saved = all
        .iter()
        .find(|c| c["UserName"].as_str().unwrap().starts_with("@@"))
        .unwrap();
    assert!(
        saved["MemberCount"].as_u64().unwrap() > 0
            && saved["MemberList"].as_array().unwrap().is_empty()
    );

    // batchgetcontact: the group with members
    let (_, b) = c.post("webwxbatchgetcontact", &json!({"BaseRequest": c.base_request(), "Count": 1, "List": [{"UserName": saved["UserName"], "EncryChatRoomId": ""}]})).await;
    assert_eq!(
        b["ContactList"][0]["MemberList"].as_array().unwrap().len(),
        saved["MemberCount"].as_u64().unwrap() as usize
    );

    // synccheck idles, then a queued message arrives through webwxsync
    assert_eq!(
        c.synccheck().await,
        "window.synccheck={retcode:\"0\",selector:\"0\"}"
    );
    let alice = fake.add_contact("Alice", "Mom");
    let q = fake.queue(Msg::text(&alice, "dinner at 7?"));
    assert_eq!(
        c.synccheck().await,
        "window.synccheck={retcode:\"0\",selector:\"2\"}"
    );
    let s = c.sync().await;
    assert_eq!(s["AddMsgCount"], 1);
    assert_eq!(s["AddMsgList"][0]["MsgId"], q.msg_id.as_str());
    assert_eq!(s["AddMsgList"][0]["Content"], "dinner at 7?");
    assert_eq!(
        c.synccheck().await,
        "window.synccheck={retcode:\"0\",selector:\"0\"}"
    );

    // send
    let r = c
        .send_text(&alice, "on my way", json!("17000000001230456"))
        .await;
    assert_eq!(r["BaseResponse"]["Ret"], 0, "{r}");
    assert_eq!(r["LocalID"], "17000000001230456");
    let sent = fake.wait_sent(1, Duration::from_secs(1)).await;
    assert_eq!(
        (sent[0].to.as_str(), sent[0].content.as_str()),
        (alice.as_str(), "on my way")
    );
    assert_eq!(r["MsgID"], sent[0].msg_id.as_str());
}

#[tokio::test]
async fn jslogin_with_a_wrong_appid_is_refused() {
    let fake = start().await;
    let body = http(false)
        .get(format!("{}/jslogin?appid=wx0&fun=new", fake.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("window.QRLogin.code = 400;"), "{body}");
    // wechat4u POSTs a form
    let body = http(false)
        .post(format!("{}/jslogin", fake.url()))
        .body(format!("appid={APPID}&fun=new&lang=zh_CN"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("window.QRLogin.code = 200;"), "{body}");
}

#[tokio::test]
async fn expired_cancelled_and_unknown_uuids_end_the_poll() {
    let fake = start().await;
    let c = Client::new(&fake.url());
    assert_eq!(c.poll("nosuchuuid==").await, "window.code=400;");
    let uuid = c.jslogin().await;
    let poll = c.poll(&uuid);
    let (body, _) = tokio::join!(poll, async {
        fake.wait_for_login_poll().await;
        fake.expire_qr();
    });
    assert_eq!(body, "window.code=400;");
    let uuid2 = c.jslogin().await;
    let (body, polled) = tokio::join!(c.poll(&uuid2), async {
        let u = fake.wait_for_login_poll().await;
        fake.cancel_qr();
        u
    });
    assert_eq!(polled, uuid2, "the newest polled uuid is the current one");
    assert_eq!(body, "window.code=202;");
}

#[tokio::test]
async fn newloginpage_without_version_v2_is_a_301_without_location() {
    let fake = start().await;
    let c = Client::new(&fake.url());
    let uuid = c.jslogin().await;
    let (redirect, _) = tokio::join!(c.poll_until_confirmed(&uuid), async {
        fake.wait_for_login_poll().await;
        fake.confirm();
    });
    let resp = c
        .http
        .get(format!("{redirect}&fun=new"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert!(resp.headers().get("location").is_none());
    assert!(!resp.text().await.unwrap().contains("<skey>"));
    assert_eq!(fake.logins(), 0);
}

#[tokio::test]
async fn a_login_ticket_works_once() {
    let fake = start().await;
    let mut c = Client::new(&fake.url());
    let uuid = c.jslogin().await;
    let (redirect, _) = tokio::join!(c.poll_until_confirmed(&uuid), async {
        fake.wait_for_login_poll().await;
        fake.confirm();
    });
    assert!(c.new_login_page(&redirect).await.contains("<ret>0</ret>"));
    let again = c.new_login_page(&redirect).await;
    assert!(
        !again.contains("<ret>0</ret>") && !again.contains("<skey>"),
        "{again}"
    );
    assert_eq!(fake.logins(), 1);
}

#[tokio::test]
async fn forbidden_login_answers_1203_without_skey() {
    let fake = start().await;
    fake.forbid_login(true);
    let mut c = Client::new(&fake.url());
    let uuid = c.jslogin().await;
    let (redirect, _) = tokio::join!(c.poll_until_confirmed(&uuid), async {
        fake.wait_for_login_poll().await;
        fake.confirm();
    });
    let xml = c.new_login_page(&redirect).await;
    assert!(
        xml.starts_with("<error><ret>1203</ret><message>") && !xml.contains("<skey>"),
        "{xml}"
    );
}

#[tokio::test]
async fn desktop_mode_login_needs_mod_desktop_and_both_headers() {
    let fake = FakeWeChat::start_with(Options {
        require_desktop: true,
        ..fast()
    })
    .await;
    let c = Client::new(&fake.url());
    let login = |extspam: &'static str| {
        let c = &c;
        let fake = &fake;
        async move {
            let uuid = c.jslogin().await;
            let (redirect, _) = tokio::join!(c.poll_until_confirmed(&uuid), async {
                fake.wait_for_login_poll().await;
                fake.confirm();
            });
            c.http
                .get(format!("{redirect}&fun=new&version=v2&mod=desktop"))
                .header("client-version", "2.0.0")
                .header("extspam", extspam)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert!(login("Gp8ICJkI-old-value")
        .await
        .contains("<ret>1203</ret>"));
    assert!(login(EXTSPAM).await.contains("<ret>0</ret>"));
}

#[tokio::test]
async fn secure_host_only_cookies_come_back_over_loopback_http() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let init = &fake.requests("webwxinit")[0];
    assert_eq!(init.cookie("wxsid").as_deref(), Some(c.sid.as_str()));
    assert_eq!(init.cookie("wxuin").as_deref(), Some(c.uin.as_str()));
    assert!(
        init.cookie("webwx_data_ticket").is_some() && init.cookie("webwx_auth_ticket").is_some()
    );
}

#[tokio::test]
async fn push_login_needs_the_switch_and_the_old_cookies() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let url = format!("{}?uin={}", c.cgi("webwxpushloginurl"), c.uin);
    let ask = |client: reqwest::Client| {
        let url = url.clone();
        async move {
            serde_json::from_str::<serde_json::Value>(
                &client.get(url).send().await.unwrap().text().await.unwrap(),
            )
            .unwrap()
        }
    };
    assert_eq!(
        ask(c.http.clone()).await["ret"],
        "1",
        "push login is off by default"
    );
    fake.enable_push_login(true);
    assert_eq!(ask(http(false)).await["ret"], "1", "no cookies");
    fake.expire_session(1101);
    let v = ask(c.http.clone()).await;
    assert_eq!(
        (v["ret"].as_str(), v["msg"].as_str()),
        (Some("0"), Some("all ok"))
    );
    let uuid = v["uuid"].as_str().unwrap().to_owned();
    let (redirect, _) = tokio::join!(c.poll_until_confirmed(&uuid), async {
        assert_eq!(fake.wait_for_login_poll().await, uuid);
        fake.confirm();
    });
    let mut c2 = Client::new(&fake.url());
    c2.http = c.http.clone();
    assert!(c2.new_login_page(&redirect).await.contains("<ret>0</ret>"));
    assert_eq!(fake.logins(), 2);
}

#[tokio::test]
async fn logout_ends_the_session_and_a_new_login_replaces_it() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let resp = c
        .http
        .get(c.cgi("webwxlogout"))
        .query(&[("redirect", "1"), ("type", "1"), ("skey", &c.skey)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert!(c.synccheck().await.contains("retcode:\"1100\""));
    let old = c;
    let _new = logged_in(&fake).await;
    let (_, v) = old
        .post("webwxinit", &json!({"BaseRequest": old.base_request()}))
        .await;
    assert_eq!(
        v["BaseResponse"]["Ret"], 1101,
        "an older session's credentials"
    );
}
