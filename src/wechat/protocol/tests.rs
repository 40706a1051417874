//! Unit tests of `protocol`.
use super::*;

#[test]
fn jslogin_uuid_is_read_with_official_spacing() {
    let body = r#"window.QRLogin.code = 200; window.QRLogin.uuid = "Xk3pQ9wZbA==";"#;
    assert_eq!(parse_jslogin(body).unwrap(), "Xk3pQ9wZbA==");
}

#[test]
fn jslogin_error_code_is_reported() {
    let body = r#"window.QRLogin.code = 400; window.QRLogin.uuid = "";"#;
    assert_eq!(parse_jslogin(body), Err(ProtocolError::JsLoginCode(400)));
    assert!(parse_jslogin("<html>").is_err());
}

#[test]
fn login_poll_codes_are_told_apart() {
    assert_eq!(parse_login_poll("window.code=408;"), Ok(LoginPoll::Waiting));
    assert_eq!(
        parse_login_poll("window.code=201;window.userAvatar = 'data:img/jpg;base64,AAA';"),
        Ok(LoginPoll::Scanned)
    );
    assert_eq!(parse_login_poll("window.code=400;"), Ok(LoginPoll::Expired));
    assert_eq!(
        parse_login_poll("window.code=202;"),
        Ok(LoginPoll::Cancelled)
    );
    assert_eq!(
        parse_login_poll("window.code=500;"),
        Ok(LoginPoll::Other(500))
    );
    let ok = "window.code=200;\nwindow.redirect_uri=\"https://wx2.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=A@qrticket_0&uuid=U==&lang=zh_CN&scan=1700000000\";";
    assert_eq!(
        parse_login_poll(ok),
        Ok(LoginPoll::Confirmed {
            redirect_uri: "https://wx2.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=A@qrticket_0&uuid=U==&lang=zh_CN&scan=1700000000".into()
        })
    );
    assert!(parse_login_poll("window.code=200;").is_err());
}

#[test]
fn login_xml_yields_credentials_and_keeps_pass_ticket_encoded() {
    let body = "<error><ret>0</ret><message></message><skey>@crypt_1a2b3c4d_00112233445566778899aabbccddeeff</skey>\
<wxsid>Ab3dE5gH7jK9mN1p</wxsid><wxuin>1234567890</wxuin><pass_ticket>k3J9%2Bq0xY%3D</pass_ticket><isgrayscale>1</isgrayscale></error>";
    let t = parse_login_xml(body).unwrap();
    assert_eq!(t.skey, "@crypt_1a2b3c4d_00112233445566778899aabbccddeeff");
    assert_eq!(t.wxsid, "Ab3dE5gH7jK9mN1p");
    assert_eq!(t.wxuin, 1234567890);
    assert_eq!(t.pass_ticket, "k3J9%2Bq0xY%3D");
}

#[test]
fn login_xml_1203_is_forbidden_in_plain_words() {
    let err = parse_login_xml("<error><ret>1203</ret><message>当前登录环境异常</message></error>")
        .unwrap_err();
    assert!(matches!(err, LoginRefused::Forbidden { .. }));
    assert!(err.to_string().contains("refuses web login"));
    assert!(matches!(
        parse_login_xml("<error><ret>0</ret><message/></error>"),
        Err(LoginRefused::Malformed(_))
    ));
    assert!(matches!(
        parse_login_xml("<html>nope"),
        Err(LoginRefused::Malformed(_))
    ));
}

#[test]
fn synccheck_is_parsed_and_decided() {
    let c = parse_synccheck(r#"window.synccheck={retcode:"0",selector:"2"}"#).unwrap();
    assert_eq!(
        c,
        SyncCheck {
            retcode: 0,
            selector: 2
        }
    );
    assert_eq!(c.action(), SyncAction::Sync);
    let idle = parse_synccheck(r#"window.synccheck={retcode:"0",selector:"0"}"#).unwrap();
    assert_eq!(idle.action(), SyncAction::PollAgain);
    for code in [1100, 1101, 1102] {
        let body = format!(r#"window.synccheck={{retcode:"{code}",selector:"0"}}"#);
        assert_eq!(
            parse_synccheck(&body).unwrap().action(),
            SyncAction::SessionExpired(code)
        );
    }
    let odd = parse_synccheck(r#"window.synccheck={retcode:"1205",selector:"0"}"#).unwrap();
    assert_eq!(odd.action(), SyncAction::Retry(1205));
    assert!(parse_synccheck("garbage").is_err());
}

#[test]
fn sync_key_query_joins_pairs_with_bars() {
    let key: SyncKey = serde_json::from_str(
        r#"{"Count":2,"List":[{"Key":1,"Val":654321001},{"Key":1000,"Val":1700000000}]}"#,
    )
    .unwrap();
    assert_eq!(key.to_query(), "1_654321001|1000_1700000000");
    assert!(!key.is_empty());
    assert!(SyncKey::default().is_empty());
}

#[test]
fn sync_response_keeps_new_msg_id_exact_and_raw_entry() {
    let body = r#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"AddMsgCount":1,"AddMsgList":[
        {"MsgId":"4839201934821","NewMsgId":9007199254740993,"FromUserName":"@a","ToUserName":"@b",
         "MsgType":1,"Content":"hi","FileSize":"0","CreateTime":1700000000}],
        "ModContactList":[],"DelContactList":[],
        "SyncKey":{"Count":1,"List":[{"Key":1,"Val":2}]},"SKey":"","SyncCheckKey":{"Count":0,"List":[]}}"#;
    let r = parse_sync_response(body).unwrap();
    let m = &r.add_msg_list[0];
    assert_eq!(m.new_msg_id, 9_007_199_254_740_993);
    assert_eq!(m.msg_id, "4839201934821");
    assert!(m.raw.as_ref().unwrap().get().contains("9007199254740993"));
    assert!(r.sync_check_key.is_empty());
}

#[test]
fn ids_are_shaped_like_the_official_client() {
    let d = new_device_id();
    assert_eq!(d.len(), 16);
    assert!(d.starts_with('e') && d[1..].bytes().all(|b| b.is_ascii_digit()));
    let id = new_client_msg_id(1_700_000_000_123);
    assert_eq!(id.len(), 17);
    assert!(id.starts_with("1700000000123"));
}

#[test]
fn session_ending_rets() {
    assert!(ret_ends_session(1100) && ret_ends_session(1101) && ret_ends_session(1102));
    assert!(!ret_ends_session(1205) && !ret_ends_session(0));
}

#[test]
fn extspam_matches_the_published_digest_length() {
    assert_eq!(EXTSPAM.len(), 880);
}
