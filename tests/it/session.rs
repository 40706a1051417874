//! The session over time: expiry mid-loop, restarts with session.json, fallbacks.
use std::time::Duration;

use wxbridge_fake::Msg;

use crate::support::{text, World, WAIT};

#[tokio::test]
async fn an_expired_session_logs_in_again_without_a_restart() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    world.fake.queue(Msg::text(&alice, "before"));
    assert_eq!(text(&bridge.next_message().await), "before");

    world.fake.expire_session(1101);
    let logout = bridge
        .next_where("logout event", |v| v["kind"] == "logout")
        .await;
    assert!(logout["reason"].as_str().unwrap().contains("1101"));
    bridge.wait_state("login_required").await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    assert_eq!(world.fake.logins(), 2);

    // The new login gave Alice a new UserName, as WeChat does.
    let alice = world.fake.user_name_of("Alice");
    world.fake.queue(Msg::text(&alice, "after"));
    assert_eq!(text(&bridge.next_message().await), "after");
}

#[tokio::test]
async fn a_restart_resumes_the_stored_session_without_a_qr_or_replayed_history() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    let old = world.fake.queue(Msg::text(&alice, "old news"));
    assert_eq!(bridge.next_message().await["id"], old.msg_id.as_str());
    assert_eq!(bridge.stop().await, 0, "SIGTERM is a clean stop");

    let while_down = world.fake.queue(Msg::text(&alice, "while you were away"));
    let jslogins = world.fake.requests("jslogin").len();
    let mut bridge = world.start(&["run"]);
    bridge.wait_state("online").await;
    let m = bridge.next_message().await;
    assert_eq!(
        m["id"],
        while_down.msg_id.as_str(),
        "the first message is the new one"
    );
    let later = bridge.drain_for(Duration::from_secs(1)).await;
    assert!(
        later.iter().all(|v| v["id"] != old.msg_id.as_str()),
        "no history replayed: {later:?}"
    );
    assert_eq!(world.fake.requests("jslogin").len(), jslogins, "no QR");
    assert_eq!(world.fake.logins(), 1, "the same session");
}

#[tokio::test]
async fn a_rejected_stored_session_falls_back_to_push_login() {
    let world = World::new().await;
    let bridge = world.run_logged_in().await;
    assert_eq!(bridge.stop().await, 0);
    world.fake.expire_session(1101);
    world.fake.enable_push_login(true);
    let jslogins = world.fake.requests("jslogin").len();

    let mut bridge = world.start(&["run"]);
    tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .unwrap();
    assert!(
        bridge.stderr().contains("confirm it"),
        "{}",
        bridge.stderr()
    );
    world.fake.confirm();
    bridge.wait_state("online").await;
    let push = world.fake.requests("webwxpushloginurl");
    assert_eq!(push.len(), 1);
    assert!(
        push[0].cookie("webwx_auth_ticket").is_some(),
        "push login sends the old cookies"
    );
    assert_eq!(
        world.fake.requests("jslogin").len(),
        jslogins,
        "no QR needed"
    );
    assert_eq!(world.fake.logins(), 2);
}

#[tokio::test]
async fn a_rejected_stored_session_without_push_login_falls_back_to_a_qr() {
    let world = World::new().await;
    let bridge = world.run_logged_in().await;
    assert_eq!(bridge.stop().await, 0);
    world.fake.expire_session(1101);

    let mut bridge = world.start(&["run"]);
    bridge.wait_state("login_required").await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    assert_eq!(
        world.fake.requests("webwxpushloginurl").len(),
        1,
        "push was tried first"
    );
    assert_eq!(world.fake.requests("jslogin").len(), 2, "then a QR");
}

#[tokio::test]
async fn sync_failures_are_retried_on_the_same_session() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    world
        .fake
        .fault("synccheck", wxbridge_fake::Fault::Status(500), 2);
    world
        .fake
        .fault("webwxsync", wxbridge_fake::Fault::Garbage, 2);
    world.fake.queue(Msg::text(&alice, "through the storm"));
    assert_eq!(text(&bridge.next_message().await), "through the storm");
    assert_eq!(world.fake.logins(), 1, "no new login for transient errors");
}

#[tokio::test]
async fn a_rotated_skey_is_taken_and_the_session_goes_on() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    world.fake.rotate_skey();
    world.fake.queue(Msg::text(&alice, "one"));
    assert_eq!(text(&bridge.next_message().await), "one");
    world.fake.queue(Msg::text(&alice, "two"));
    assert_eq!(text(&bridge.next_message().await), "two");
    let skey = world.fake.session().unwrap().skey;
    let stored = std::fs::read_to_string(world.state_dir().join("session.json")).unwrap();
    assert!(stored.contains(&skey), "the new skey is stored");
    assert_eq!(world.fake.logins(), 1);
}

#[tokio::test]
async fn a_session_quiet_for_zombie_after_is_revalidated_with_webwxinit() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "");
    let config = world.config("");
    let yaml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("wechat:\n", "wechat:\n  zombie_after: 1s\n");
    std::fs::write(&config, yaml).unwrap();
    let mut bridge = crate::support::Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let inits = world.fake.requests("webwxinit").len();
    // synccheck keeps failing: no successful sync for longer than zombie_after.
    world
        .fake
        .fault("synccheck", wxbridge_fake::Fault::Status(500), 12);
    world.fake.wait_requests("webwxinit", inits + 1, WAIT).await;
    assert!(
        world.fake.requests("webwxinit").len() > inits,
        "re-validated"
    );
    // A re-validation that finds the session gone ends it like any expiry.
    world.fake.expire_session(1101);
    bridge.wait_state("login_required").await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let alice = world.fake.user_name_of("Alice");
    world.fake.queue(Msg::text(&alice, "alive"));
    assert_eq!(text(&bridge.next_message().await), "alive");
}

#[tokio::test]
async fn two_quick_deaths_stop_logins_until_a_relogin_is_requested() {
    let world = World::new().await;
    let port = crate::brokers::free_port();
    let config = world.config(&format!("http:\n  listen: 127.0.0.1:{port}\n"));
    let mut bridge = crate::support::Bridge::spawn(&config, &["run"]);
    // State lines and spooled events travel separately on stdout and may overtake each
    // other, so lines are counted, not taken in order.
    fn state(s: &'static str) -> impl Fn(&serde_json::Value) -> bool {
        move |v| v["kind"] == "state" && v["state"] == s
    }
    for n in 1..=2 {
        world.scan_and_confirm().await;
        bridge.nth("online", n, state("online")).await;
        world.fake.expire_session(1101);
        bridge.nth("logout", n, |v| v["kind"] == "logout").await;
    }
    let forbidden = bridge
        .nth("login_forbidden", 1, state("login_forbidden"))
        .await;
    assert!(
        forbidden["reason"]
            .as_str()
            .unwrap()
            .contains("twice in a row"),
        "{forbidden}"
    );
    let logins = world.fake.logins();
    let jslogins = world.fake.requests("jslogin").len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        world.fake.requests("jslogin").len(),
        jslogins,
        "no login on its own"
    );

    // A command now is answered at once: waiting for its TTL would help nobody.
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/send"))
        .body(r#"{"to":"filehelper","text":"anyone?","request_id":"f-1"}"#)
        .send()
        .await
        .unwrap();
    let result: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(result["error"]["code"], "not_logged_in", "{result}");

    let relogin = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/relogin"))
        .send()
        .await
        .unwrap();
    assert!(relogin.status().is_success());
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    assert_eq!(world.fake.logins(), logins + 1);
}

#[tokio::test]
async fn commands_wait_for_a_login_and_then_go_out_in_order() {
    let world = World::new().await;
    let mut bridge = world.start(&["run"]);
    bridge.wait_state("login_required").await;
    for i in 0..3 {
        bridge
            .send_line(
                format!(r#"{{"to":"filehelper","text":"queued {i}","request_id":"q-{i}"}}"#)
                    .as_bytes(),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        world.fake.sent().is_empty(),
        "nothing goes out before a login"
    );
    world.scan_and_confirm().await;
    for i in 0..3 {
        let r = bridge.next_result().await;
        assert_eq!(r["request_id"], format!("q-{i}").as_str());
        assert_eq!(r["ok"], true, "{r}");
    }
    let texts: Vec<String> = world.fake.sent().into_iter().map(|s| s.content).collect();
    assert_eq!(texts, ["queued 0", "queued 1", "queued 2"]);
}
