//! Who the HTTP API answers, against the real binary: a `Host` that names a foreign domain
//! (DNS rebinding) is refused, page sessions are fresh per login and end on sign-out or
//! restart, and private answers are never cached.
use reqwest::header::{CACHE_CONTROL, COOKIE, HOST, ORIGIN, SET_COOKIE};
use reqwest::{Method, StatusCode};

use crate::http::{eventually, start, Api};
use crate::support::World;

/// Every route behind the guards, as (method, path).
const GUARDED: [(&str, &str); 12] = [
    ("GET", "/"),
    ("GET", "/page.js"),
    ("GET", "/api/status"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/contacts"),
    ("GET", "/qr.png"),
    (
        "GET",
        "/media/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ),
    ("POST", "/send"),
    ("POST", "/relogin"),
    ("POST", "/signout"),
    ("GET", "/?token=x"),
];

fn port_of(api: &Api) -> &str {
    api.base.rsplit(':').next().unwrap()
}

#[tokio::test]
async fn a_foreign_host_name_is_refused_everywhere_but_healthz() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let (mut bridge, api) = start(&world, "  allowed_hosts: [bridge.lan]\n", &[]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let port = port_of(&api).to_owned();

    // What a page on evil.example sends once its name resolves to 127.0.0.1.
    let rebound = format!("evil.example:{port}");
    for (method, path) in GUARDED {
        let method: Method = method.parse().unwrap();
        let r = api
            .request(method.clone(), path)
            .header(HOST, &rebound)
            .body(r#"{"to":"Mom","text":"from a rebound page"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::MISDIRECTED_REQUEST,
            "{method} {path}"
        );
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("Alice") && body.contains("allowed_hosts"),
            "{method} {path}: {body}"
        );
    }
    assert!(world.fake.sent().is_empty(), "nothing was sent");
    let health = api
        .request(Method::GET, "/healthz")
        .header(HOST, &rebound)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "liveness answers anyone");

    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("bridge.lan:{port}"),
        "BRIDGE.LAN".to_owned(),
    ] {
        let r = api
            .request(Method::GET, "/contacts")
            .header(HOST, &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    assert_eq!(bridge.stop().await, 0);
}

/// Opens the page with the token; answers the session cookie (`name=value`) and its
/// `Set-Cookie` line.
async fn page_login(api: &Api, token: &str) -> (String, String) {
    let login = api.get(&format!("/?token={token}")).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let set = login.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    (set.split(';').next().unwrap().to_owned(), set)
}

async fn status_with(api: &Api, cookie: &str) -> StatusCode {
    api.request(Method::GET, "/api/status")
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn page_sessions_are_fresh_per_login_and_end_on_sign_out_or_restart() {
    let world = World::new().await;
    let (bridge, api) = start(&world, "  token: first-t0ken\n", &[]).await;

    let (a, set) = page_login(&api, "first-t0ken").await;
    let (b, _) = page_login(&api, "first-t0ken").await;
    assert_ne!(a, b, "each login gets its own value");
    assert!(set.contains("Max-Age=43200"), "12 hours: {set}");
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert_eq!(status_with(&api, &a).await, StatusCode::OK);
    assert_eq!(status_with(&api, &b).await, StatusCode::OK);

    let out = api
        .request(Method::POST, "/signout")
        .header(COOKIE, &a)
        .header(ORIGIN, api.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    let cleared = out.headers()[SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(status_with(&api, &a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&api, &b).await, StatusCode::OK, "only a ended");
    assert_eq!(bridge.stop().await, 0);

    // A new token means a restart, which ends every session.
    let (bridge, api) = start(
        &world,
        "  token: second-t0ken\n  public_url: https://bridge.example/\n",
        &[],
    )
    .await;
    assert_eq!(status_with(&api, &b).await, StatusCode::UNAUTHORIZED);
    let (c, set) = page_login(&api, "second-t0ken").await;
    assert!(set.contains("; Secure"), "behind https: {set}");
    assert_eq!(status_with(&api, &c).await, StatusCode::OK);
    assert_eq!(bridge.stop().await, 0);
}

#[tokio::test]
async fn answers_that_carry_private_data_are_never_cached() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let (mut bridge, api) = start(&world, "", &[]).await;
    eventually("the QR at /qr.png", || async {
        api.get("/qr.png").await.status() == StatusCode::OK
    })
    .await;
    let no_store = |r: &reqwest::Response| {
        r.headers()
            .get(CACHE_CONTROL)
            .is_some_and(|v| v == "no-store")
    };
    assert!(no_store(&api.get("/qr.png").await), "/qr.png");
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    for path in ["/", "/contacts", "/api/status", "/readyz", "/metrics"] {
        let r = api.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(no_store(&r), "{path}: {:?}", r.headers().get(CACHE_CONTROL));
    }
    let sent = api
        .post("/send", r#"{"to":"Mom","text":"cache me not"}"#)
        .await;
    assert_eq!(sent.status(), StatusCode::OK);
    assert!(no_store(&sent), "/send");
    assert_eq!(bridge.stop().await, 0);
}
