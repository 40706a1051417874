//! Inbound media end to end: each kind downloaded from the fake into the store and described
//! in its event; too large, expired and switched off; spool order while a download is slow;
//! the sync loop not waiting for it; a stop or a crash in the middle of it.
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wxbridge_fake::Msg;

use crate::brokers::free_port;
use crate::support::{Bridge, World};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where the store keeps a file: `<state_dir>/media/<aa>/<sha256>`.
fn stored_path(world: &World, sha: &str) -> PathBuf {
    world.state_dir().join("media").join(&sha[..2]).join(sha)
}

/// The `media` object of a media event, or the `file` object of a file event.
fn described(event: &Value) -> &Value {
    if event["type"] == "file" {
        &event["file"]
    } else {
        &event["media"]
    }
}

/// Checks that `event` names the fake's bytes of `msg_id` and that the store holds them
/// owner-only.
fn assert_stored(world: &World, event: &Value, msg_id: &str) -> String {
    let bytes = world.fake.media_bytes(msg_id).expect("the fake has bytes");
    let d = described(event);
    let sha = d["sha256"]
        .as_str()
        .unwrap_or_else(|| panic!("no sha256: {event}"));
    assert_eq!(sha, sha256_hex(&bytes), "{event}");
    assert_eq!(d["size"], bytes.len() as u64, "{event}");
    assert!(d.get("error").is_none(), "{event}");
    let path = stored_path(world, sha);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the stored file is the bytes"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    sha.to_owned()
}

async fn message_with_id(bridge: &mut Bridge, id: &str) -> Value {
    let id = id.to_owned();
    bridge
        .next_where("the message", move |v| {
            v["kind"] == "message" && v["id"] == id.as_str()
        })
        .await
}

#[tokio::test]
async fn every_media_kind_is_stored_under_its_sha256_and_described_in_its_event() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;

    let kinds = [
        (
            "image",
            world.fake.queue(Msg::image(&alice)).msg_id,
            "image/jpeg",
        ),
        (
            "voice",
            world.fake.queue(Msg::voice(&alice, 3000)).msg_id,
            "audio/mpeg",
        ),
        // Large enough that the answer comes in many chunks.
        (
            "video",
            world
                .fake
                .queue(Msg::video(&alice, 9).media_len(700_000))
                .msg_id,
            "video/mp4",
        ),
        (
            "file",
            world
                .fake
                .queue(Msg::file(&alice, "report.pdf", 30_000))
                .msg_id,
            "application/pdf",
        ),
        (
            "emoticon",
            world.fake.queue(Msg::emoticon(&alice)).msg_id,
            "image/gif",
        ),
    ];
    for (kind, id, mime) in &kinds {
        let event = message_with_id(&mut bridge, id).await;
        assert_eq!(event["type"], *kind);
        assert_stored(&world, &event, id);
        assert_eq!(described(&event)["mime"], *mime, "{event}");
        crate::schema::assert_valid(&event);
    }
    let image = bridge
        .seen
        .iter()
        .find(|v| v["id"] == kinds[0].1.as_str())
        .unwrap();
    assert!(image["media"]["width"].as_u64().unwrap() > 0, "{image}");
    assert!(image["media"]["height"].as_u64().unwrap() > 0, "{image}");
    let voice = bridge
        .seen
        .iter()
        .find(|v| v["id"] == kinds[1].1.as_str())
        .unwrap();
    assert_eq!(voice["media"]["duration_ms"], 3000);

    // The video was asked for with a range, answered 206.
    let video = world.fake.requests("webwxgetvideo");
    assert!(!video.is_empty());
    assert!(
        world.fake.violations().is_empty(),
        "every download followed the protocol: {:?}",
        world.fake.violations()
    );
    for (_, id, _) in &kinds {
        assert_eq!(world.fake.downloads_completed(id), 1, "fetched once: {id}");
    }
    bridge.stop().await;
}

#[tokio::test]
async fn a_file_over_max_file_bytes_is_too_large_and_never_requested() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("media:\n  max_file_bytes: 10000\n");
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    let file = world
        .fake
        .queue(Msg::file(&alice, "big.zip", 50_000))
        .msg_id;
    // An image says no size: its answer's length is checked before its body is read.
    let image = world
        .fake
        .queue(Msg::image(&alice).media_len(60_000))
        .msg_id;
    // A video's XML announces its length.
    let video = world
        .fake
        .queue(Msg::video(&alice, 3).media_len(80_000))
        .msg_id;
    let after = world.fake.queue(Msg::text(&alice, "after")).msg_id;

    let event = message_with_id(&mut bridge, &file).await;
    assert_eq!(event["file"]["error"], "too_large", "{event}");
    assert!(event["file"]["sha256"].is_null());
    assert!(
        world.fake.requests("webwxgetmedia").is_empty(),
        "never requested"
    );
    crate::schema::assert_valid(&event);

    let event = message_with_id(&mut bridge, &image).await;
    assert_eq!(event["media"]["error"], "too_large", "{event}");
    let sha = sha256_hex(&world.fake.media_bytes(&image).unwrap());
    assert!(!stored_path(&world, &sha).exists(), "nothing stored");
    let event = message_with_id(&mut bridge, &video).await;
    assert_eq!(event["media"]["error"], "too_large", "{event}");
    assert!(
        world.fake.requests("webwxgetvideo").is_empty(),
        "never requested"
    );
    message_with_id(&mut bridge, &after).await;
    bridge.stop().await;
}

#[tokio::test]
async fn media_wechat_no_longer_has_goes_out_as_expired() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    world.fake.set_media_delay(Duration::from_millis(200));
    let msg = Msg::voice(&alice, 2000);
    let queued = world.fake.queue(msg);
    world.fake.expire_media(&queued.msg_id);
    let event = message_with_id(&mut bridge, &queued.msg_id).await;
    assert_eq!(event["media"]["error"], "expired", "{event}");
    assert!(event["media"]["sha256"].is_null());
    assert!(event["media"]["size"].is_null());
    crate::schema::assert_valid(&event);
    bridge.stop().await;
}

#[tokio::test]
async fn with_media_download_empty_nothing_is_fetched_and_events_carry_no_file() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("media:\n  download: []\n");
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    let file = world.fake.queue(Msg::file(&alice, "a.pdf", 1000)).msg_id;
    let event = message_with_id(&mut bridge, &image).await;
    assert!(event["media"]["sha256"].is_null(), "{event}");
    assert!(event["media"].get("error").is_none(), "{event}");
    let event = message_with_id(&mut bridge, &file).await;
    assert!(event["file"]["sha256"].is_null(), "{event}");
    assert_eq!(event["file"]["size"], 1000, "WeChat's FileSize");
    assert!(world.fake.requests("webwxgetmsgimg").is_empty());
    assert!(world.fake.requests("webwxgetmedia").is_empty());
    bridge.stop().await;
}

#[tokio::test]
async fn small_files_travel_inline_and_every_stored_file_gets_a_signed_url() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let port = free_port();
    let config = world.config(&format!(
        "http:\n  listen: 127.0.0.1:{port}\nmedia:\n  inline_max_bytes: 100000\n"
    ));
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let small = world.fake.queue(Msg::emoticon(&alice)).msg_id;
    let large = world
        .fake
        .queue(Msg::video(&alice, 3).media_len(300_000))
        .msg_id;

    let event = message_with_id(&mut bridge, &small).await;
    let sha = assert_stored(&world, &event, &small);
    use base64::Engine as _;
    let inline = base64::engine::general_purpose::STANDARD
        .decode(event["media"]["base64"].as_str().expect("inline bytes"))
        .unwrap();
    assert_eq!(inline, world.fake.media_bytes(&small).unwrap());
    let url = event["media"]["url"].as_str().expect("a url");
    let prefix = format!("http://127.0.0.1:{port}/media/{sha}?");
    assert!(url.starts_with(&prefix), "{url}");
    assert!(url.contains("exp=") && url.contains("sig="), "{url}");
    let fetched = reqwest::get(url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/gif");
    assert_eq!(
        fetched.bytes().await.unwrap().to_vec(),
        world.fake.media_bytes(&small).unwrap(),
        "the signed link serves the stored bytes"
    );

    let event = message_with_id(&mut bridge, &large).await;
    assert_stored(&world, &event, &large);
    assert!(
        event["media"].get("base64").is_none(),
        "over inline_max_bytes"
    );
    assert!(event["media"]["url"].is_string());

    let metrics = crate::http::Api::new(port)
        .get("/metrics")
        .await
        .text()
        .await
        .unwrap();
    for line in [
        r#"wxbridge_media_downloads_total{kind="emoticon",outcome="stored",account="test"} 1"#,
        r#"wxbridge_media_downloads_total{kind="video",outcome="stored",account="test"} 1"#,
        r#"wxbridge_media_wait_seconds_count{account="test"} 2"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"wxbridge_media_downloaded_bytes_total{account="test"} "#))
        .expect("bytes downloaded")
        .parse()
        .unwrap();
    assert!(bytes >= 300_000, "{bytes}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_text_after_a_slow_image_is_published_after_it() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let mut bridge = world.run_logged_in().await;
    world.fake.set_media_delay(Duration::from_secs(2));

    let before = world.fake.queue(Msg::text(&alice, "before")).msg_id;
    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    let after = world.fake.queue(Msg::text(&alice, "after")).msg_id;
    assert_eq!(bridge.next_message().await["id"], before.as_str());
    let second = bridge.next_message().await;
    assert_eq!(
        second["id"],
        image.as_str(),
        "nothing overtakes the image: {second}"
    );
    assert_stored(&world, &second, &image);
    assert_eq!(bridge.next_message().await["id"], after.as_str());
    bridge.stop().await;
}

#[tokio::test]
async fn syncs_go_on_while_a_download_stalls() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("media:\n  wait: 120s\n");
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    // Longer than the test: the download stalls for its whole run.
    world.fake.set_media_delay(Duration::from_secs(120));

    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    tokio::time::timeout(crate::support::WAIT, async {
        while world.fake.downloads(&image) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the download started");
    // Each webwxsync goes out only once the answer before it is committed: three more mean
    // the texts after the image were taken from WeChat and spooled meanwhile.
    let syncs = world.fake.requests("webwxsync").len();
    for n in 0..3 {
        world.fake.queue(Msg::text(&alice, &format!("t{n}")));
        tokio::time::timeout(crate::support::WAIT, async {
            while world.fake.requests("webwxsync").len() <= syncs + n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("syncs go on while the image downloads");
    }
    assert_eq!(
        world.fake.downloads_completed(&image),
        0,
        "still downloading"
    );
    let seen = bridge.drain_for(Duration::from_millis(500)).await;
    assert!(
        seen.iter().all(|v| v["kind"] != "message"),
        "the texts wait behind the held image: {seen:?}"
    );
    assert_eq!(bridge.stop().await, 0);
}

#[tokio::test]
async fn a_stop_during_a_download_loses_nothing_and_the_next_start_fetches_it() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("media:\n  wait: 60s\n");
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    world.fake.set_media_delay(Duration::from_secs(30));

    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    let after = world.fake.queue(Msg::text(&alice, "after")).msg_id;
    tokio::time::timeout(crate::support::WAIT, async {
        while world.fake.downloads(&image) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the download started");
    let seen = bridge.drain_for(Duration::from_millis(300)).await;
    assert!(
        seen.iter().all(|v| v["kind"] != "message"),
        "nothing went out while the image was held: {seen:?}"
    );
    assert_eq!(bridge.stop().await, 0);

    world.fake.set_media_delay(Duration::ZERO);
    let mut bridge = Bridge::spawn(&config, &["run"]);
    let first = bridge.next_message().await;
    assert_eq!(first["id"], image.as_str(), "{first}");
    assert_stored(&world, &first, &image);
    assert_eq!(bridge.next_message().await["id"], after.as_str());
    assert_eq!(world.fake.downloads_completed(&image), 1);
    bridge.stop().await;
}

#[tokio::test]
async fn a_file_stored_before_a_crash_is_not_fetched_again() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("");
    let bridge = world.run_logged_in().await;
    assert_eq!(bridge.stop().await, 0);

    let crashing = Bridge::spawn_with_env(
        &config,
        &["run"],
        &[("WXBRIDGE_FAILPOINT", "media_stored_before_release")],
    );
    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    let (code, stderr) = crashing.exit().await;
    assert_ne!(code, 0, "the failpoint aborted the process: {stderr}");
    assert!(stderr.contains("failpoint media_stored_before_release"));
    assert_eq!(world.fake.downloads_completed(&image), 1);

    let mut bridge = Bridge::spawn(&config, &["run"]);
    let event = message_with_id(&mut bridge, &image).await;
    assert_stored(&world, &event, &image);
    assert_eq!(
        world.fake.downloads(&image),
        1,
        "the stored file was found, not fetched again"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn on_mqtt_and_nats_a_text_after_a_slow_image_comes_after_it_with_the_file_described() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let (mqtt, nats) = (crate::brokers::mosquitto(), crate::brokers::nats_server());
    let config = world.config(&format!(
        "mqtt:\n  url: mqtt://127.0.0.1:{}\n  client_id: wxbridge-media\n\
         nats:\n  url: nats://127.0.0.1:{}\n",
        mqtt.port, nats.port
    ));
    let mut w = crate::watch::Watcher::new(mqtt.port, "observer", "wechat/test/message").await;
    let nc = async_nats::connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let mut core = nc.subscribe("wechat.test.message").await.unwrap();
    // The events go to the buses, not to stdout: the messages queued now are fetched once
    // the bridge is online.
    let bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    world.fake.set_media_delay(Duration::from_secs(2));

    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    let after = world.fake.queue(Msg::text(&alice, "after")).msg_id;
    let sha = sha256_hex(&world.fake.media_bytes(&image).unwrap());
    let mut on_mqtt = Vec::new();
    for _ in 0..2 {
        let m = w.next_on("wechat/test/message").await;
        on_mqtt.push(serde_json::from_slice::<Value>(&m.payload).unwrap());
    }
    let mut on_nats = Vec::new();
    for _ in 0..2 {
        use futures_util::StreamExt;
        let m = tokio::time::timeout(crate::support::WAIT, core.next())
            .await
            .expect("a NATS message")
            .unwrap();
        on_nats.push(serde_json::from_slice::<Value>(&m.payload).unwrap());
    }
    for (sink, got) in [("mqtt", &on_mqtt), ("nats", &on_nats)] {
        assert_eq!(got[0]["id"], image.as_str(), "{sink}: image first");
        assert_eq!(got[0]["media"]["sha256"], sha.as_str(), "{sink}");
        assert_eq!(got[1]["id"], after.as_str(), "{sink}: then the text");
        crate::schema::assert_valid(&got[0]);
    }
    bridge.stop().await;
}

#[tokio::test]
async fn a_held_download_waits_through_a_new_login_and_uses_the_new_session() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("media:\n  wait: 60s\n");
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    world.fake.set_media_delay(Duration::from_secs(30));
    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    tokio::time::timeout(crate::support::WAIT, async {
        while world.fake.downloads(&image) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the download started");
    assert_eq!(bridge.stop().await, 0);

    // The stored session is dead: the next start needs a new login before it can download.
    world.fake.expire_session(1101);
    world.fake.set_media_delay(Duration::ZERO);
    let mut bridge = Bridge::spawn(&config, &["run"]);
    bridge.wait_state("login_required").await;
    world.scan_and_confirm().await;
    let event = message_with_id(&mut bridge, &image).await;
    assert_stored(&world, &event, &image);
    assert_eq!(world.fake.downloads_completed(&image), 1);
    bridge.stop().await;
}

#[tokio::test]
async fn a_download_still_running_at_media_wait_goes_out_as_fetch_failed() {
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "");
    let config = world.config("media:\n  wait: 1s\n");
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    // Far longer than the wait: only the deadline can end it.
    world.fake.set_media_delay(Duration::from_secs(120));
    let image = world.fake.queue(Msg::image(&alice)).msg_id;
    let after = world.fake.queue(Msg::text(&alice, "after")).msg_id;
    let event = message_with_id(&mut bridge, &image).await;
    assert_eq!(event["media"]["error"], "fetch_failed", "{event}");
    assert!(event["media"]["sha256"].is_null());
    crate::schema::assert_valid(&event);
    assert_eq!(bridge.next_message().await["id"], after.as_str());
    bridge.stop().await;
}
