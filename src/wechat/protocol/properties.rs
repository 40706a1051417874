//! Properties of the parsers on generated bodies (proptest): nothing panics, and what the
//! server's documented shapes carry is read back exactly.
use proptest::prelude::*;

use super::*;

/// Bodies built from the tokens the JS-text parsers look for.
fn js_body() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        "[0-9]{1,25}",
        prop::sample::select(vec![
            "window.QRLogin.code",
            "window.QRLogin.uuid",
            "window.code",
            "window.redirect_uri",
            "window.synccheck",
            "retcode",
            "selector",
            " = ",
            "=",
            ":",
            "\"",
            "'",
            ";",
            ",",
            "{",
            "}",
            "\n",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..30).prop_map(|p| p.concat())
}

/// Text that is neither empty nor padded with whitespace, as the login XML's fields are.
const FIELD: &str = "[!-~\u{4e00}-\u{9fa5}]{1,40}";

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

proptest! {
    #[test]
    fn js_text_parsers_never_panic(body in js_body()) {
        let _ = parse_jslogin(&body);
        let _ = parse_login_poll(&body);
        if let Ok(check) = parse_synccheck(&body) {
            let _ = check.action();
        }
    }

    #[test]
    fn jslogin_reads_back_any_uuid(uuid in "[A-Za-z0-9+/=_-]{1,40}") {
        let body = format!("window.QRLogin.code = 200; window.QRLogin.uuid = \"{uuid}\";");
        prop_assert_eq!(parse_jslogin(&body), Ok(uuid));
    }

    #[test]
    fn login_poll_reads_back_its_code(code in prop_oneof![
        prop::sample::select(vec![408u32, 201, 200, 400, 202, 500, 0]),
        any::<u32>(),
    ]) {
        let redirect = "https://wx2.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?ticket=A@qrticket_0";
        let body = format!("window.code={code};\nwindow.redirect_uri=\"{redirect}\";");
        let want = match code {
            408 => LoginPoll::Waiting,
            201 => LoginPoll::Scanned,
            200 => LoginPoll::Confirmed { redirect_uri: redirect.to_owned() },
            400 => LoginPoll::Expired,
            202 => LoginPoll::Cancelled,
            other => LoginPoll::Other(other),
        };
        prop_assert_eq!(parse_login_poll(&body), Ok(want));
    }

    #[test]
    fn synccheck_reads_back_any_codes(retcode in any::<u32>(), selector in any::<u32>()) {
        let body = format!("window.synccheck={{retcode:\"{retcode}\",selector:\"{selector}\"}}");
        prop_assert_eq!(parse_synccheck(&body), Ok(SyncCheck { retcode, selector }));
    }

    #[test]
    fn login_xml_reads_back_escaped_credentials(
        skey in FIELD,
        wxsid in FIELD,
        wxuin in any::<u64>(),
        pass_ticket in FIELD,
    ) {
        let body = format!(
            "<error><ret>0</ret><message></message><skey>{}</skey><wxsid>{}</wxsid>\
             <wxuin>{wxuin}</wxuin><pass_ticket>{}</pass_ticket><isgrayscale>1</isgrayscale></error>",
            xml_escape(&skey),
            xml_escape(&wxsid),
            xml_escape(&pass_ticket),
        );
        let want = LoginTicket { skey, wxsid, wxuin, pass_ticket };
        prop_assert_eq!(parse_login_xml(&body), Ok(want));
    }

    #[test]
    fn login_xml_never_panics_on_element_soup(body in prop::collection::vec(
        prop_oneof![
            FIELD.prop_map(|s| xml_escape(&s)),
            prop::sample::select(vec![
                "<error>", "</error>", "<ret>", "</ret>", "0", "1203", "<skey>", "</skey>",
                "<wxsid>", "</wxsid>", "<wxuin>", "</wxuin>", "<pass_ticket>",
                "</pass_ticket>", "<![CDATA[", "]]>", "&amp;", "&#0;", "<!DOCTYPE x>",
            ]).prop_map(str::to_owned),
        ],
        0..24,
    )) {
        let body = body.concat();
        if let Ok(ticket) = parse_login_xml(&body) {
            prop_assert!(!ticket.skey.is_empty() && !ticket.wxsid.is_empty());
            prop_assert!(!ticket.pass_ticket.is_empty());
        }
    }

    #[test]
    fn sync_key_query_lists_every_pair_in_order(
        pairs in prop::collection::vec((any::<u64>(), any::<u64>()), 0..8),
    ) {
        let key = SyncKey {
            count: u32::try_from(pairs.len()).unwrap(),
            list: pairs.iter().map(|&(key, val)| KeyVal { key, val }).collect(),
        };
        let query = key.to_query();
        let back: Vec<(u64, u64)> = query
            .split('|')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('_').unwrap();
                (k.parse().unwrap(), v.parse().unwrap())
            })
            .collect();
        prop_assert_eq!(back, pairs);
    }
}
