//! The request table over a whole session: a login, init, the contacts, a few syncs, a send of
//! each kind and a logout, recorded by the fake and diffed against the official client's
//! requests (`src/wechat/requests/official.json`), in desktop mode and in plain web mode.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use wxbridge::wechat::requests;
use wxbridge_fake::{Msg, RequestRecord};

use crate::support::{Bridge, World};
// Headers the transport owns, which the table leaves out: the fake's own list.
use wxbridge_fake::TRANSPORT;

/// A file whose first bytes say what it is (the bridge sniffs them).
fn media_bytes(kind: &str, len: usize) -> Vec<u8> {
    let head: &[u8] = match kind {
        "jpg" => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "pdf" => b"%PDF-1.4\n",
        "mp4" => b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
        "gif" => b"GIF89a\x01\x00\x01\x00\x00\x00\x00",
        _ => b"",
    };
    let mut bytes = head.to_vec();
    bytes.resize(len, 0x5a);
    bytes
}

/// This world's config in a mode, with a directory of one file of each kind allowed.
fn config(world: &World, desktop: bool, files: &Path) -> PathBuf {
    let path = world.config(&format!("media:\n  paths: [\"{}\"]\n", files.display()));
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "wechat:\n",
        &format!("wechat:\n  desktop_mode: {desktop}\n"),
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn result_of(bridge: &mut Bridge, command: Value) -> Value {
    let rid = command["request_id"].as_str().unwrap().to_owned();
    bridge.send_line(command.to_string().as_bytes()).await;
    bridge
        .next_where(&format!("the result of {rid}"), |v| {
            v["kind"] == "result" && v["request_id"] == rid.as_str()
        })
        .await
}

/// What differs between a recorded request and the table's entry for it in a mode.
fn diff(record: &RequestRecord, desktop: bool, page: &str) -> Vec<String> {
    let table = requests::official();
    let Some(entry) = table.request(&record.endpoint) else {
        return vec![format!("{}: not in the table", record.path)];
    };
    let mut out = Vec::new();
    if entry.method != record.method {
        out.push(format!("{}: method {}", record.endpoint, record.method));
    }
    let want_query = table.query(&record.endpoint, desktop);
    if want_query != record.query_names {
        out.push(format!(
            "{}: query {:?}, want {want_query:?}",
            record.endpoint, record.query_names
        ));
    }
    let want = table.headers(&record.endpoint, desktop, page);
    for (name, value) in &want {
        let got = record.headers.get(&name.to_ascii_lowercase());
        let ok = match value.strip_suffix("{own}") {
            Some(prefix) => got.is_some_and(|g| g.starts_with(prefix)),
            None => got == Some(value),
        };
        if !ok {
            out.push(format!(
                "{}: {name} {got:?}, want {value:?}",
                record.endpoint
            ));
        }
    }
    for name in record.headers.keys() {
        let listed = want.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !listed && !TRANSPORT.contains(&name.as_str()) {
            out.push(format!("{}: extra header {name}", record.endpoint));
        }
    }
    out
}

async fn whole_session_matches_the_table(desktop: bool) {
    let world = World::new().await;
    let files = world.dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (name, len) in [
        ("cam.jpg", 3000),
        ("report.pdf", 48_213),
        ("clip.mp4", 700_000),
        ("smile.gif", 3000),
    ] {
        let kind = name.rsplit('.').next().unwrap();
        std::fs::write(files.join(name), media_bytes(kind, len)).unwrap();
    }
    let mom = world.fake.add_contact("Alice", "Mom");
    let config = config(&world, desktop, &files);
    let mut bridge = Bridge::spawn(&config, &["run"]);
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    // A few syncs: two messages in, each fetched by a webwxsync.
    world.fake.queue(Msg::text(&mom, "first"));
    bridge.next_message().await;
    world.fake.queue(Msg::text(&mom, "second"));
    bridge.next_message().await;

    // A send of each kind.
    let sends = [
        json!({"to": "Mom", "text": "hello", "request_id": "t"}),
        json!({"to": "Mom", "image": {"path": files.join("cam.jpg")}, "request_id": "i"}),
        json!({"to": "Mom", "file": {"path": files.join("report.pdf")}, "request_id": "f"}),
        json!({"to": "Mom", "video": {"path": files.join("clip.mp4")}, "request_id": "v"}),
        json!({"to": "Mom", "emoticon": {"path": files.join("smile.gif")}, "request_id": "e"}),
    ];
    for send in sends {
        let r = result_of(&mut bridge, send.clone()).await;
        assert_eq!(r["ok"], true, "{send}: {r}");
    }
    assert_eq!(bridge.stop().await, 0);

    let logout = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxbridge"))
        .arg("--config")
        .arg(&config)
        .arg("logout")
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), logout)
        .await
        .expect("logout finished")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let recorded = world.fake.requests("");
    let endpoints: Vec<&str> = recorded.iter().map(|r| r.endpoint.as_str()).collect();
    for wanted in [
        "jslogin",
        "login",
        "webwxnewloginpage",
        "webwxinit",
        "webwxstatusnotify",
        "webwxgetcontact",
        "webwxbatchgetcontact",
        "synccheck",
        "webwxsync",
        "webwxsendmsg",
        "webwxuploadmedia",
        "webwxsendmsgimg",
        "webwxsendappmsg",
        "webwxsendvideomsg",
        "webwxsendemoticon",
        "webwxlogout",
    ] {
        assert!(endpoints.contains(&wanted), "no {wanted} in {endpoints:?}");
    }
    // Cadence: statusnotify Code 3 once, right after the one init.
    let init = endpoints.iter().position(|e| *e == "webwxinit").unwrap();
    assert_eq!(endpoints[init + 1], "webwxstatusnotify", "{endpoints:?}");
    assert_eq!(world.fake.requests("webwxinit").len(), 1);
    let notify = world.fake.requests("webwxstatusnotify");
    assert_eq!(notify.len(), 1);
    assert_eq!(notify[0].json().unwrap()["Code"], 3);

    let page = world.fake.url();
    let differences: Vec<String> = recorded
        .iter()
        .flat_map(|r| diff(r, desktop, &page))
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    // The fake compared every request as it came (bodies' member order included).
    assert!(
        world.fake.violations().is_empty(),
        "{:#?}",
        world.fake.violations()
    );
}

#[tokio::test]
async fn a_whole_desktop_mode_session_sends_exactly_the_official_requests() {
    whole_session_matches_the_table(true).await;
}

#[tokio::test]
async fn a_whole_plain_web_session_sends_exactly_the_official_requests() {
    whole_session_matches_the_table(false).await;
}
