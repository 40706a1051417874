//! Logging in: QR, its prompts and PNG, expiry and the pause after three, 1203, desktop mode,
//! the state-dir lock.
use std::time::Duration;

use serde_json::Value;
use wxbridge_fake::{Msg, Options};

use crate::support::{text, World, WAIT};

#[tokio::test]
async fn qr_login_then_a_group_text_arrives_with_sender_entities_emoji_and_mention() {
    let world = World::new().await;
    let me = world.fake.self_user();
    let family = world
        .fake
        .add_group("Family", &[("Alice", "Aunt Alice"), ("Bob", "")], true);
    let alice = family.members[0].user_name.clone();

    let mut bridge = world.start(&["run"]);
    bridge.wait_state("login_required").await;
    let uuid = tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .unwrap();
    let stderr = bridge.stderr();
    assert!(stderr.contains("Scan this QR code"), "prompt: {stderr}");
    assert!(stderr.contains(&format!("https://login.weixin.qq.com/l/{uuid}")));
    assert!(
        stderr.contains('▀') || stderr.contains('▄'),
        "half-block QR on stderr"
    );
    let png = std::fs::read(world.dir.path().join("qr.png")).expect("the QR PNG is written");
    assert!(image::load_from_memory(&png).is_ok(), "qr_png is a PNG");

    world.fake.scan();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    world.fake.confirm();
    bridge.wait_state("online").await;
    assert!(bridge.stderr().contains("confirm the login on your phone"));
    let login = bridge
        .seen_or_next("login event", |v| v["kind"] == "login")
        .await;
    assert_eq!(login["user"]["name"], me.nick_name.as_str());

    let body = format!(
        "Tom & Jerry <3 \"quoted\"\nline two 😄 @{}\u{2005}dinner?",
        me.nick_name
    );
    let queued = world
        .fake
        .queue(Msg::group_text(&family.user_name, &alice, &body));
    let m = bridge.next_message().await;
    assert_eq!(m["id"], queued.msg_id.as_str());
    assert_eq!(m["type"], "text");
    assert_eq!(m["origin"], "contact");
    let key = m["chat"]["key"].as_str().expect("the group has a key");
    assert!(wxbridge::event::is_contact_key(key), "{key}");
    assert_eq!(
        m["chat"],
        serde_json::json!({"id": family.user_name, "name": "Family", "group": true, "key": key})
    );
    assert_eq!(m["from"]["id"], alice.as_str());
    assert_eq!(
        m["from"]["name"], "Aunt Alice",
        "group DisplayName wins over NickName"
    );
    assert_eq!(m["from"]["self"], false);
    assert_eq!(
        text(&m),
        body,
        "prefix stripped, <br/>, entities and emoji restored"
    );
    assert_eq!(m["mentioned"], true);
    assert_eq!(
        m["raw"]["NewMsgId"].as_u64(),
        Some(queued.new_msg_id),
        "NewMsgId above 2^53 survives exactly"
    );
    assert!(queued.new_msg_id > 1 << 53);
}

#[tokio::test]
async fn an_expired_qr_is_replaced_by_a_new_one() {
    let world = World::new().await;
    let mut bridge = world.start(&["run"]);
    let first = tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .unwrap();
    world.fake.expire_qr();
    let second = tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .unwrap();
    assert_ne!(first, second);
    assert_eq!(world.fake.requests("jslogin").len(), 2, "a new uuid per QR");
    assert!(bridge.stderr().contains("The last QR code expired"));
    world.fake.scan();
    world.fake.confirm();
    bridge.wait_state("online").await;
}

#[tokio::test]
async fn login_explains_1203_and_exits_1() {
    let world = World::new().await;
    world.fake.forbid_login(true);
    let login = world.start(&["login"]);
    world.scan_and_confirm().await;
    let (code, stderr) = login.exit().await;
    assert_eq!(code, 1);
    assert!(stderr.contains("refuses web login"), "{stderr}");
    assert!(stderr.contains("1203"), "{stderr}");
    assert!(!world.state_dir().join("session.json").exists());
}

#[tokio::test]
async fn run_reports_login_forbidden_on_1203_and_stays_up() {
    let world = World::new().await;
    world.fake.forbid_login(true);
    let mut bridge = world.start(&["run"]);
    world.scan_and_confirm().await;
    let state = bridge.wait_state("login_forbidden").await;
    assert!(
        state["reason"].as_str().unwrap().contains("1203"),
        "{state}"
    );
    let jslogins = world.fake.requests("jslogin").len();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        world.fake.requests("jslogin").len(),
        jslogins,
        "no new login is tried on its own"
    );
    assert_eq!(bridge.stop().await, 0);
}

#[tokio::test]
async fn desktop_mode_sends_mod_desktop_and_the_uos_headers() {
    let world = World::with(Options {
        require_desktop: true,
        ..Default::default()
    })
    .await;
    let mut bridge = world.start(&["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let js = &world.fake.requests("jslogin")[0];
    assert!(js.query["redirect_uri"].contains("mod=desktop"));
    let page = &world.fake.requests("webwxnewloginpage")[0];
    assert_eq!(page.query.get("mod").map(String::as_str), Some("desktop"));
    assert_eq!(page.query.get("version").map(String::as_str), Some("v2"));
    assert_eq!(page.headers["client-version"], "2.0.0");
}

#[tokio::test]
async fn without_desktop_mode_a_desktop_only_account_gets_1203() {
    let world = World::with(Options {
        require_desktop: true,
        ..Default::default()
    })
    .await;
    let config = world.config("");
    let yaml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("wechat:\n", "wechat:\n  desktop_mode: false\n");
    std::fs::write(&config, yaml).unwrap();
    let mut bridge = crate::support::Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("login_forbidden").await;
}

#[tokio::test]
async fn a_second_run_on_the_same_state_dir_is_refused_naming_the_first() {
    let world = World::new().await;
    let mut first = world.start(&["run"]);
    first.wait_state("login_required").await;
    let second = world.start(&["run"]);
    let (code, stderr) = second.exit().await;
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    let (code, _, stderr) = world.command(&["send", "--to", "filehelper", "hi"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("send topic"),
        "points to the running bridge: {stderr}"
    );
}

#[tokio::test]
async fn login_stores_a_private_session_that_run_resumes_without_a_qr() {
    let world = World::new().await;
    let login = world.start(&["login"]);
    world.scan_and_confirm().await;
    let (code, stderr) = login.exit().await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Logged in as"));

    let file = world.state_dir().join("session.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&world.state_dir()), 0o700);
    }
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    for key in ["skey", "wxsid", "wxuin", "pass_ticket"] {
        assert!(
            !stored["credentials"]["ticket"][key].is_null(),
            "{key} stored"
        );
    }
    assert!(
        stored.get("sync_key").is_none(),
        "the sync keys live in the spool, committed with the events"
    );
    let cookies = stored["cookies"].as_array().unwrap();
    assert!(cookies
        .iter()
        .any(|c| c["raw_cookie"].as_str().unwrap().starts_with("wxsid=")));
    assert!(
        cookies.iter().all(|c| !c["domain"].is_null()),
        "cookies keep their domain"
    );

    let jslogins = world.fake.requests("jslogin").len();
    let mut bridge = world.start(&["run"]);
    bridge.wait_state("online").await;
    assert_eq!(
        world.fake.requests("jslogin").len(),
        jslogins,
        "no QR on resume"
    );
}

#[tokio::test]
async fn login_gives_up_after_five_expired_qr_codes() {
    let world = World::new().await;
    let login = world.start(&["login"]);
    for _ in 0..5 {
        tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
            .await
            .unwrap();
        world.fake.expire_qr();
    }
    let (code, stderr) = login.exit().await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("gave up after 5 QR codes expired"),
        "{stderr}"
    );
    assert_eq!(world.fake.requests("jslogin").len(), 5);
}

#[tokio::test]
async fn a_login_cancelled_on_the_phone_shows_a_new_qr() {
    let world = World::new().await;
    let mut bridge = world.start(&["run"]);
    let first = tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .unwrap();
    world.fake.scan();
    world.fake.cancel_qr();
    let second = tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
        .await
        .unwrap();
    assert_ne!(first, second);
    world.fake.scan();
    world.fake.confirm();
    bridge.wait_state("online").await;
}

#[tokio::test]
async fn an_unreachable_wechat_is_told_with_its_cause_and_no_qr_is_promised() {
    let world = World::new().await;
    let closed = crate::brokers::free_port();
    let url = format!("http://127.0.0.1:{closed}");
    let mut bridge = crate::support::Bridge::spawn_with_env(
        &world.config(""),
        &["run"],
        &[("WXBRIDGE__WECHAT__LOGIN_URL", &url)],
    );
    let offline = bridge
        .next_where("the offline state", |v| {
            v["kind"] == "state" && v["state"] == "offline"
        })
        .await;
    let reason = offline["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("cannot reach 127.0.0.1:{closed}: ")),
        "{reason}"
    );
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    // The failed request is logged with its whole chain of causes, down to the refusal.
    let logged = |stderr: String| {
        stderr.lines().any(|l| {
            l.contains("login failed")
                && l.contains(&format!(
                    "jslogin (127.0.0.1:{closed}): error sending request"
                ))
                && l.contains("Connection refused")
        })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !logged(bridge.stderr()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cause is logged: {}",
            bridge.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    bridge
        .drain_for(std::time::Duration::from_millis(700))
        .await;
    let states: Vec<&Value> = bridge
        .seen
        .iter()
        .filter(|v| v["kind"] == "state")
        .collect();
    assert!(
        states.iter().all(|v| v["state"] != "login_required"),
        "{states:?}"
    );
    // Nothing ever asked for a scan.
    let stderr = bridge.stderr();
    assert!(!stderr.contains("Scan this QR code"), "{stderr}");
    assert_eq!(bridge.stop().await, 0);
}

#[tokio::test]
async fn three_unscanned_qr_codes_pause_run_until_a_relogin_request() {
    let world = World::new().await;
    let port = crate::brokers::free_port();
    let config = world.config(&format!("http:\n  listen: 127.0.0.1:{port}\n"));
    // A first pause of a minute: far longer than this test waits, so only the relogin ends it.
    let yaml = std::fs::read_to_string(&config)
        .unwrap()
        .replace("initial: 50ms", "initial: 30s")
        .replace("max: 500ms", "max: 5m");
    std::fs::write(&config, yaml).unwrap();
    let mut bridge = crate::support::Bridge::spawn(&config, &["run"]);
    for _ in 0..3 {
        tokio::time::timeout(WAIT, world.fake.wait_for_login_poll())
            .await
            .unwrap();
        world.fake.expire_qr();
    }
    let paused = bridge
        .next_where("the pause", |v| {
            v["kind"] == "state"
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("3 QR codes expired"))
        })
        .await;
    assert_eq!(paused["state"], "login_required", "{paused}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        world.fake.requests("jslogin").len(),
        3,
        "no fourth QR code during the pause"
    );

    let relogin = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/relogin"))
        .send()
        .await
        .unwrap();
    assert!(relogin.status().is_success());
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    assert_eq!(world.fake.requests("jslogin").len(), 4);
}
