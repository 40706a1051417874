//! Connections that never send a request cannot take the bridge down: run under a low
//! open-file limit, the bridge is flooded with idle connections, more than it has
//! descriptors; WeChat stays reachable and `/healthz` answers once the idle ones time out.
use std::time::Duration;

use reqwest::StatusCode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::brokers;
use crate::http::Api;
use crate::support::{Bridge, World};

/// The open-file limit the bridge runs under. With it the HTTP server takes at most 128
/// connections (half the limit stays in reserve).
const NOFILE: u32 = 256;
/// More idle connections than the bridge has descriptors, but fewer than two rounds of the
/// cap, so the header timeout frees room for `/healthz` after one round.
const IDLE: usize = 240;

fn have_prlimit() -> bool {
    std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_use_up_the_descriptors() {
    if !have_prlimit() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let port = brokers::free_port();
    let config = world.config(&format!("http:\n  listen: 127.0.0.1:{port}\n"));
    let limit = format!("--nofile={NOFILE}:{NOFILE}");
    let mut bridge = Bridge::spawn_under(&["prlimit", &limit, "--"], &config, &["run"], &[]);
    let api = Api::new(port);
    api.up().await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    // Connections that never send a byte; the kernel completes each handshake whether or
    // not the bridge accepts it.
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }

    // The bridge keeps descriptors for its own links: a send goes out to WeChat.
    bridge
        .send_line(br#"{"to":"Mom","text":"still reachable","request_id":"fd-1"}"#)
        .await;
    let result = bridge.next_result().await;
    assert_eq!(result["ok"], true, "{result}\n{}", bridge.stderr());
    assert!(world
        .fake
        .sent()
        .iter()
        .any(|m| m.content == "still reachable"));

    // And the HTTP API comes back once the idle connections have timed out (a failure bound,
    // not a speed check: two header timeouts and then some).
    let asked = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(60),
        reqwest::get(format!("{}/healthz", api.base)),
    )
    .await
    .unwrap_or_else(|_| panic!("/healthz never answered\n{}", bridge.stderr()))
    .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    eprintln!("/healthz answered after {:?}", asked.elapsed());
    drop(idle);
    let stderr = bridge.stderr();
    assert!(
        !stderr.contains("Too many open files"),
        "no descriptor ran out:\n{stderr}"
    );
    assert!(
        stderr.contains("max_connections=128"),
        "the cap follows the limit:\n{stderr}"
    );
    assert_eq!(bridge.stop().await, 0);
}
