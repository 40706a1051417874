//! Unit tests of `client`.
use super::*;
use cookie_store::CookieStore;

/// The session cookies are set by the API host with `Domain=<api host>`, so its file and push
/// subdomains must get them too (PROTOCOL.md §1.4, §2), and `.qq.com` cookies go everywhere.
#[test]
fn cookies_set_by_the_api_host_reach_its_push_and_file_hosts() {
    let mut store = CookieStore::default();
    let api = Url::parse("https://wx2.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage").unwrap();
    for raw in [
        "wxuin=1234567890; Domain=wx2.qq.com; Path=/; Secure",
        "wxsid=Ab3dE5gH7jK9mN1p; Domain=wx2.qq.com; Path=/; Secure",
        "webwx_data_ticket=gSd3; Domain=.qq.com; Path=/; Secure",
    ] {
        store.parse(raw, &api).unwrap();
    }
    let hosts = Hosts::from_redirect(&api);
    for role in [&hosts.push, &hosts.file, &hosts.api] {
        let names: Vec<_> = store
            .matches(role)
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        for want in ["wxuin", "wxsid", "webwx_data_ticket"] {
            assert!(names.iter().any(|n| n == want), "{want} missing on {role}");
        }
    }
    let elsewhere = Url::parse("https://webpush.wx8.qq.com/").unwrap();
    let names: Vec<_> = store
        .matches(&elsewhere)
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    assert_eq!(
        names,
        ["webwx_data_ticket"],
        "only the .qq.com cookie crosses to wx8"
    );
}

#[test]
fn saved_cookies_keep_their_domains_and_session_cookies() {
    let client = WxClient::new(
        Url::parse("https://login.wx.qq.com").unwrap(),
        true,
        Timeouts::default(),
    );
    let api = Url::parse("https://wx2.qq.com/").unwrap();
    client
        .jar
        .lock()
        .unwrap()
        .parse("wxsid=S1; Domain=wx2.qq.com; Path=/; Secure", &api)
        .unwrap();
    let saved = client.save_cookies();
    let restored = WxClient::new(
        Url::parse("https://login.wx.qq.com").unwrap(),
        true,
        Timeouts::default(),
    );
    restored.restore_cookies(&saved).unwrap();
    let push = Url::parse("https://webpush.wx2.qq.com/").unwrap();
    assert_eq!(restored.cookie_for(&push, "wxsid").as_deref(), Some("S1"));
}
