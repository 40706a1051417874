//! `Options::check_requests`: every request is compared with the official client's (the
//! request table). A request as the official client sends it passes; a missing or extra
//! header, a wrong value, a wrong query order and an unknown endpoint each are a violation.

use wxbridge_fake::{FakeWeChat, Options};

use crate::support::{fast, http};

/// The official web-mode User-Agent, as the table has it.
fn web_user_agent() -> String {
    let table: serde_json::Value =
        serde_json::from_str(include_str!("../../../src/wechat/requests/official.json")).unwrap();
    table["modes"]["web"]["user_agent"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn checking() -> FakeWeChat {
    FakeWeChat::start_with(Options {
        check_requests: true,
        ..fast()
    })
    .await
}

/// jslogin as the official page loads it in plain web mode, with `change` applied to it.
async fn jslogin(
    fake: &FakeWeChat,
    query: &[(&str, &str)],
    change: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) {
    let base = fake.url();
    let req = http(false)
        .get(format!("{base}/jslogin"))
        .query(query)
        .header("User-Agent", web_user_agent())
        .header("Accept", "*/*")
        .header("Accept-Language", "zh-CN,zh;q=0.9")
        .header("Referer", format!("{base}/"));
    let resp = change(req).send().await.unwrap();
    assert!(resp.status().is_success() || resp.status() == 404);
}

const QUERY: &[(&str, &str)] = &[
    ("appid", "wx782c26e4c19acffb"),
    (
        "redirect_uri",
        "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage",
    ),
    ("fun", "new"),
    ("lang", "zh_CN"),
    ("_", "1700000000000"),
];

fn rules(fake: &FakeWeChat) -> Vec<String> {
    fake.violations().into_iter().map(|v| v.rule).collect()
}

#[tokio::test]
async fn a_request_as_the_official_client_sends_it_passes() {
    let fake = checking().await;
    jslogin(&fake, QUERY, |r| r).await;
    assert_eq!(rules(&fake), Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_header_is_a_violation() {
    let fake = checking().await;
    // A bare HTTP client: no User-Agent, no Referer.
    http(false)
        .get(format!("{}/jslogin", fake.url()))
        .query(QUERY)
        .send()
        .await
        .unwrap();
    let rules = rules(&fake);
    assert!(
        rules.iter().any(|r| r == "header user-agent missing"),
        "{rules:?}"
    );
    assert!(
        rules.iter().any(|r| r == "header referer missing"),
        "{rules:?}"
    );
}

#[tokio::test]
async fn an_extra_header_is_a_violation() {
    let fake = checking().await;
    jslogin(&fake, QUERY, |r| {
        r.header("X-Requested-With", "XMLHttpRequest")
    })
    .await;
    assert_eq!(
        rules(&fake),
        ["header x-requested-with, which the official client does not send"]
    );
}

#[tokio::test]
async fn a_wrong_header_value_is_a_violation() {
    let fake = checking().await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("user-agent", "reqwest/0.13".parse().unwrap());
    // `headers` replaces what `header` appended.
    jslogin(&fake, QUERY, |r| r.headers(headers)).await;
    let rules = rules(&fake);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(
        rules[0].starts_with("header user-agent: \"reqwest/0.13\""),
        "{rules:?}"
    );
}

#[tokio::test]
async fn a_wrong_query_order_is_a_violation() {
    let fake = checking().await;
    let mut swapped = QUERY.to_vec();
    swapped.swap(0, 2);
    jslogin(&fake, &swapped, |r| r).await;
    let rules = rules(&fake);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(
        rules[0].starts_with("query [\"fun\", \"redirect_uri\", \"appid\""),
        "{rules:?}"
    );
}

#[tokio::test]
async fn an_unknown_endpoint_is_a_violation() {
    let fake = checking().await;
    let base = fake.url();
    let resp = http(false)
        .get(format!("{base}/cgi-bin/mmwebwx-bin/webwxgetmsgimgx"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let rules = rules(&fake);
    assert_eq!(
        rules,
        ["GET /cgi-bin/mmwebwx-bin/webwxgetmsgimgx: not a request the official client makes"]
    );
}

#[tokio::test]
async fn a_desktop_mode_login_is_held_to_the_desktop_table() {
    let fake = checking().await;
    let desktop = [
        QUERY[0],
        (
            "redirect_uri",
            "https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage?mod=desktop",
        ),
        QUERY[2],
        QUERY[3],
        QUERY[4],
    ];
    // The plain web User-Agent on a desktop-mode login.
    jslogin(&fake, &desktop, |r| r).await;
    let rules = rules(&fake);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(rules[0].contains("UOS"), "{rules:?}");
}

#[tokio::test]
async fn a_time_that_is_not_one_is_a_violation() {
    let fake = checking().await;
    let mut query = QUERY.to_vec();
    query[4] = ("_", "17000");
    jslogin(&fake, &query, |r| r).await;
    assert_eq!(rules(&fake), ["query _=\"17000\" is not \"ms\""]);
}

#[tokio::test]
async fn a_repeated_query_parameter_is_a_violation() {
    let fake = checking().await;
    let base = fake.url();
    // A desktop-mode client that appends mod=desktop to a redirect already carrying it.
    http(false)
        .get(format!(
            "{base}/cgi-bin/mmwebwx-bin/webwxnewloginpage?mod=desktop&ticket=t&uuid=u&lang=zh_CN&scan=1&fun=new&version=v2&mod=desktop"
        ))
        .send()
        .await
        .unwrap();
    let rules = rules(&fake);
    assert!(rules.iter().any(|r| r == "query mod repeated"), "{rules:?}");
}
