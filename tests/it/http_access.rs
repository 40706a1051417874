//! Who the HTTP API answers, against the real binary: a `Host` that names a foreign domain
//! (DNS rebinding) is refused.
use reqwest::header::HOST;
use reqwest::{Method, StatusCode};

use crate::http::{start, Api};
use crate::support::World;

/// Every route behind the guards, as (method, path).
const GUARDED: [(&str, &str); 10] = [
    ("GET", "/"),
    ("GET", "/page.js"),
    ("GET", "/api/status"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/contacts"),
    ("GET", "/qr.png"),
    ("POST", "/send"),
    ("POST", "/relogin"),
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
