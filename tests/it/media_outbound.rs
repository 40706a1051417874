//! Outbound media: commands with `image`, `file`, `video` or `emoticon` from each source,
//! uploaded to the fake and sent, and every source the safety rules refuse.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{Bridge, World};

/// A small web server on 127.0.0.1 standing for a camera or a file host: `/file/<name>`
/// serves [`served_bytes`], `/redirect/<port>/<name>` answers 302 to that name on
/// `127.0.0.1:<port>`, `/big` announces 2 MiB, `/stream` sends 2 MiB without announcing it,
/// `/slow` answers after 10 s, anything else 404. It counts the requests per path.
struct Origin {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Origin {
    async fn start() -> Origin {
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let app = Router::new()
            .route("/{*path}", get(serve))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Origin { port, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }
}

async fn serve(
    State(hits): State<Arc<Mutex<HashMap<String, usize>>>>,
    UrlPath(path): UrlPath<String>,
) -> Response {
    *hits.lock().unwrap().entry(format!("/{path}")).or_default() += 1;
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["file", name] => served_bytes(name, 3000).into_response(),
        ["redirect", port, name] => (
            StatusCode::FOUND,
            [(
                header::LOCATION,
                format!("http://127.0.0.1:{port}/file/{name}"),
            )],
        )
            .into_response(),
        ["big"] => vec![7u8; 2 * 1024 * 1024].into_response(),
        ["stream"] => {
            let chunks = (0..32).map(|_| Ok::<_, std::io::Error>(vec![7u8; 64 * 1024]));
            axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_response()
        }
        ["slow"] => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            served_bytes("slow.jpg", 10).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Bytes that look like their name's type (a JPEG, a PDF, an MP4, a GIF), `len` long and
/// different per name.
fn served_bytes(name: &str, len: usize) -> Vec<u8> {
    let head: &[u8] = match name.rsplit('.').next() {
        Some("jpg") => b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        Some("pdf") => b"%PDF-1.4\n",
        Some("mp4") => b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
        Some("gif") => b"GIF89a\x01\x00\x01\x00\x00\x00\x00",
        _ => b"",
    };
    let mut bytes = head.to_vec();
    let seed = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let mut x = seed;
    while bytes.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        bytes.push((x >> 16) as u8);
    }
    bytes
}

/// The `media:` section of a test: fetch limits, an allowed directory.
fn media_config(allow_hosts: &[&str], paths: &[&Path], max_bytes: &str) -> String {
    let hosts: Vec<String> = allow_hosts.iter().map(|h| format!("\"{h}\"")).collect();
    let paths: Vec<String> = paths
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    format!(
        "media:\n  fetch:\n    allow_hosts: [{}]\n    max_bytes: {max_bytes}\n    timeout: 2s\n  \
         paths: [{}]\n",
        hosts.join(", "),
        paths.join(", ")
    )
}

/// Runs a logged-in bridge with `extra` config; commands may be 4 MiB (base64 sources).
async fn run_with(world: &World, extra: &str) -> Bridge {
    let mut bridge = Bridge::spawn_with_env(
        &world.config(extra),
        &["run"],
        &[("WXBRIDGE__SEND__MAX_BYTES", "4194304")],
    );
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    bridge
}

/// Sends `command` on stdin and waits for its result.
async fn result_of(bridge: &mut Bridge, command: Value) -> Value {
    let rid = command["request_id"]
        .as_str()
        .expect("a request_id")
        .to_owned();
    bridge.send_line(command.to_string().as_bytes()).await;
    bridge
        .next_where(&format!("the result of {rid}"), |v| {
            v["kind"] == "result" && v["request_id"] == rid.as_str()
        })
        .await
}

/// Directories for path sources: `allowed/` (with `snap.jpg`, a link out, a subdir) and
/// `outside/secret.pdf`.
struct Dirs {
    _root: tempfile::TempDir,
    allowed: PathBuf,
    outside: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("allowed");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(allowed.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(allowed.join("snap.jpg"), served_bytes("snap.jpg", 4000)).unwrap();
    std::fs::write(outside.join("secret.pdf"), served_bytes("secret.pdf", 100)).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.pdf"), allowed.join("link.pdf")).unwrap();
    Dirs {
        _root: root,
        allowed,
        outside,
    }
}

#[tokio::test]
async fn refused_urls_and_paths_are_answered_and_nothing_is_fetched_or_sent() {
    let origin = Origin::start().await;
    let d = dirs();
    let world = World::new().await;
    let extra = media_config(&["localhost"], &[&d.allowed], "1MiB");
    let mut bridge = run_with(&world, &extra).await;
    let other = Origin::start().await;

    let cases = [
        (json!({"url": "file:///etc/passwd"}), "media_forbidden"),
        (json!({"url": "ftp://localhost/x.jpg"}), "media_forbidden"),
        // Not listed: refused by name, before any lookup.
        (
            json!({"url": origin.url("127.0.0.1", "/file/a.jpg")}),
            "media_forbidden",
        ),
        (
            json!({"url": "http://example.invalid/a.jpg"}),
            "media_forbidden",
        ),
        // Listed, but it redirects to an address that is not.
        (
            json!({"url": origin.url("localhost", &format!("/redirect/{}/b.jpg", other.port))}),
            "media_forbidden",
        ),
        (
            json!({"url": origin.url("localhost", "/big")}),
            "media_too_large",
        ),
        (
            json!({"url": origin.url("localhost", "/stream")}),
            "media_too_large",
        ),
        (
            json!({"url": origin.url("localhost", "/slow")}),
            "media_fetch_failed",
        ),
        (
            json!({"url": origin.url("localhost", "/missing.jpg")}),
            "media_fetch_failed",
        ),
        (
            json!({"path": d.outside.join("secret.pdf")}),
            "media_forbidden",
        ),
        (
            json!({"path": d.allowed.join("../outside/secret.pdf")}),
            "media_forbidden",
        ),
        (
            json!({"path": d.allowed.join("link.pdf")}),
            "media_forbidden",
        ),
        (json!({"path": d.allowed.join("sub")}), "media_forbidden"),
        (
            json!({"path": d.allowed.join("nothing.jpg")}),
            "media_forbidden",
        ),
        (json!({"path": "allowed/snap.jpg"}), "media_forbidden"),
        (json!({"base64": "AAAA"}), "invalid_command"),
        (
            json!({"base64": "not base64!", "name": "x.bin"}),
            "invalid_command",
        ),
        (
            json!({"base64": "A".repeat(2 * 1024 * 1024), "name": "x.bin"}),
            "media_too_large",
        ),
        (json!({"sha256": "0".repeat(64)}), "invalid_command"),
    ];
    for (i, (source, code)) in cases.iter().enumerate() {
        let command = json!({
            "to": "filehelper", "image": source, "text": "after", "request_id": format!("bad-{i}"),
        });
        let r = result_of(&mut bridge, command).await;
        assert_eq!(r["ok"], false, "{source}: {r}");
        assert_eq!(r["error"]["code"], *code, "{source}: {r}");
        assert!(r.get("media").is_none(), "nothing was stored: {r}");
    }
    assert_eq!(
        other.hits("/file/b.jpg"),
        0,
        "the redirect's target was never asked"
    );
    assert_eq!(origin.hits("/file/a.jpg"), 0);
    assert_eq!(origin.hits(&format!("/redirect/{}/b.jpg", other.port)), 1);
    assert!(world.fake.sent().is_empty(), "not even the text went out");
    assert!(world.fake.requests("webwxuploadmedia").is_empty());
    bridge.stop().await;
}

#[tokio::test]
async fn without_allow_hosts_only_public_addresses_are_fetched() {
    let origin = Origin::start().await;
    let world = World::new().await;
    let mut bridge = run_with(&world, &media_config(&[], &[], "1MiB")).await;
    for (i, url) in [
        origin.url("localhost", "/file/a.jpg"),
        origin.url("127.0.0.1", "/file/a.jpg"),
        origin.url("[::ffff:127.0.0.1]", "/file/a.jpg"),
    ]
    .iter()
    .enumerate()
    {
        let r = result_of(
            &mut bridge,
            json!({"to": "filehelper", "image": {"url": url}, "request_id": format!("pub-{i}")}),
        )
        .await;
        assert_eq!(r["error"]["code"], "media_forbidden", "{url}: {r}");
    }
    assert_eq!(origin.hits("/file/a.jpg"), 0, "no connection was made");
    bridge.stop().await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn each_kind_is_uploaded_and_sent_from_each_source_media_first_then_text() {
    let origin = Origin::start().await;
    let d = dirs();
    let report = served_bytes("report.pdf", 48_213);
    std::fs::write(d.allowed.join("report.pdf"), &report).unwrap();
    let clip = served_bytes("clip.mp4", 700_000);
    let world = World::new().await;
    let mom = world.fake.add_contact("Alice", "Mom");
    world.fake.echo_sent(true);
    let mut bridge = run_with(&world, &media_config(&["localhost"], &[&d.allowed], "1MiB")).await;

    use base64::Engine as _;
    let cases = [
        (
            json!({"to": "Mom", "image": {"url": origin.url("localhost", "/file/cam.jpg")},
                   "text": "someone at the door", "request_id": "m-image"}),
            served_bytes("cam.jpg", 3000),
            ("webwxsendmsgimg", 3, "pic"),
        ),
        (
            json!({"to": "Mom", "file": {"path": d.allowed.join("report.pdf")}, "request_id": "m-file"}),
            report.clone(),
            ("webwxsendappmsg", 6, "doc"),
        ),
        (
            json!({"to": "Mom", "video": {"base64": base64::engine::general_purpose::STANDARD.encode(&clip),
                   "name": "clip.mp4"}, "request_id": "m-video"}),
            clip.clone(),
            ("webwxsendvideomsg", 43, "video"),
        ),
        (
            json!({"to": "Mom", "emoticon": {"url": origin.url("localhost", "/file/smile.gif")},
                   "request_id": "m-emoticon"}),
            served_bytes("smile.gif", 3000),
            ("webwxsendemoticon", 47, "doc"),
        ),
    ];
    for (i, (command, bytes, (endpoint, msg_type, media_type))) in cases.iter().enumerate() {
        let r = result_of(&mut bridge, command.clone()).await;
        assert_eq!(r["ok"], true, "{command}: {r}");
        let sha = sha256_hex(bytes);
        assert_eq!(
            r["media"],
            json!({"sha256": sha, "size": bytes.len()}),
            "{r}"
        );
        let sent = world
            .fake
            .wait_sent_media(i + 1, crate::support::WAIT)
            .await;
        let m = &sent[i];
        assert_eq!((m.endpoint.as_str(), m.msg_type), (*endpoint, *msg_type));
        assert_eq!(m.to, mom);
        assert_eq!(r["msg_id"], m.msg_id.as_str());
        let upload = m.upload.as_ref().expect("sent from an upload");
        assert_eq!(upload.sha256, sha, "the bytes arrived intact");
        assert_eq!(upload.media_type, *media_type);
        assert_eq!(upload.to, mom);
    }
    let file = &world.fake.sent_media()[1];
    assert!(
        file.content.contains("<title>report.pdf</title>"),
        "{}",
        file.content
    );
    assert!(
        file.content.contains("<totallen>48213</totallen>"),
        "{}",
        file.content
    );
    assert!(
        file.content.contains("<fileext>pdf</fileext>"),
        "{}",
        file.content
    );

    // The text of the first command went after its image.
    let texts = world.fake.sent();
    assert_eq!(texts.len(), 1, "only the first command had text");
    assert_eq!(texts[0].content, "someone at the door");
    let image_result = bridge
        .seen_or_next("m-image's result", |v| {
            v["kind"] == "result" && v["request_id"] == "m-image"
        })
        .await;
    assert_eq!(image_result["text_msg_id"], texts[0].msg_id.as_str());
    let image_id: u64 = world.fake.sent_media()[0].msg_id.parse().unwrap();
    let text_id: u64 = texts[0].msg_id.parse().unwrap();
    assert!(image_id < text_id, "media first, then text");

    // The echo of each media send is the bridge's own.
    for (kind, rid) in [
        ("image", "m-image"),
        ("file", "m-file"),
        ("video", "m-video"),
        ("emoticon", "m-emoticon"),
    ] {
        let echo = bridge
            .seen_or_next(&format!("the {kind}'s echo"), |v| {
                v["kind"] == "message" && v["type"] == kind
            })
            .await;
        assert_eq!(echo["origin"], "bridge", "{echo}");
        assert_eq!(echo["request_id"], rid, "{echo}");
    }

    // Forwarding: a stored file by its sha256, nothing fetched again.
    let cam_sha = sha256_hex(&served_bytes("cam.jpg", 3000));
    let r = result_of(
        &mut bridge,
        json!({"to": "filehelper", "image": {"sha256": cam_sha}, "request_id": "m-forward"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["media"]["sha256"], cam_sha.as_str());
    let forwarded = world.fake.wait_sent_media(5, crate::support::WAIT).await;
    assert_eq!(forwarded[4].to, "filehelper");
    assert_eq!(forwarded[4].upload.as_ref().unwrap().sha256, cam_sha);
    assert_eq!(
        origin.hits("/file/cam.jpg"),
        1,
        "the store served the forward"
    );
    assert!(
        world.fake.violations().is_empty(),
        "{:?}",
        world.fake.violations()
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_30_mb_file_is_checked_then_uploaded_in_chunks() {
    let d = dirs();
    let big = served_bytes("big.zip", 30_000_000);
    std::fs::write(d.allowed.join("big.zip"), &big).unwrap();
    let world = World::new().await;
    let mut bridge = run_with(&world, &media_config(&[], &[&d.allowed], "64MiB")).await;
    let r = result_of(
        &mut bridge,
        json!({"to": "filehelper", "file": {"path": d.allowed.join("big.zip")}, "request_id": "big"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let sent = world.fake.wait_sent_media(1, crate::support::WAIT).await;
    let upload = sent[0].upload.clone().expect("from an upload");
    assert_eq!(upload.sha256, sha256_hex(&big));
    assert_eq!(upload.chunks, 58, "524288-byte chunks");
    assert!(
        upload.signed,
        "checkupload first, with its AESKey and Signature"
    );
    assert!(
        !sent[0].signature.is_empty(),
        "the send carries the Signature"
    );
    assert_eq!(world.fake.requests("webwxcheckupload").len(), 1);
    assert!(
        world.fake.violations().is_empty(),
        "{:?}",
        world.fake.violations()
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_queued_media_command_survives_a_restart_without_a_second_fetch() {
    let origin = Origin::start().await;
    let world = World::new().await;
    let config = world.config(&media_config(&["localhost"], &[], "1MiB"));
    // Not logged in: the command is fetched and queued, then waits.
    let mut first = Bridge::spawn(&config, &["run"]);
    let first_qr = world.fake.wait_for_login_poll().await;
    let command = json!({"to": "filehelper", "image": {"url": origin.url("localhost", "/file/door.jpg")},
                         "text": "door", "request_id": "restart-1"});
    first.send_line(command.to_string().as_bytes()).await;
    // Stdin hands in one line at a time: this one is answered only once the first is queued.
    first.send_line(b"not json").await;
    let marker = first.next_result().await;
    assert_eq!(marker["error"]["code"], "invalid_json", "{marker}");
    assert_eq!(first.stop().await, 0);
    assert_eq!(origin.hits("/file/door.jpg"), 1);

    let mut second = Bridge::spawn(&config, &["run"]);
    // Its own QR code, not the first run's.
    while world.fake.wait_for_login_poll().await == first_qr {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.fake.scan();
    world.fake.confirm();
    let r = second
        .next_where("the queued command's result", |v| {
            v["kind"] == "result" && v["request_id"] == "restart-1"
        })
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let sha = sha256_hex(&served_bytes("door.jpg", 3000));
    assert_eq!(r["media"]["sha256"], sha.as_str());
    let sent = world.fake.wait_sent_media(1, crate::support::WAIT).await;
    assert_eq!(sent[0].upload.as_ref().unwrap().sha256, sha);
    assert_eq!(
        world.fake.wait_sent(1, crate::support::WAIT).await[0].content,
        "door"
    );
    assert_eq!(
        origin.hits("/file/door.jpg"),
        1,
        "the store kept the bytes: no second fetch"
    );
    second.stop().await;
}

#[tokio::test]
async fn a_multipart_post_send_is_uploaded_and_sent_with_its_text() {
    let world = World::new().await;
    let mom = world.fake.add_contact("Alice", "Mom");
    let (mut bridge, api) = crate::http::start(&world, "", &[]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let photo = served_bytes("snap.jpg", 5000);
    let boundary = "wxbridge-outbound-test";
    let mut body = Vec::new();
    for (name, value) in [("to", "Mom"), ("text", "door"), ("request_id", "mp-1")] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; \
             filename=\"snap.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&photo);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = api
        .request(reqwest::Method::POST, "/send")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["ok"], true, "{result}");
    let sha = sha256_hex(&photo);
    assert_eq!(result["media"]["sha256"], sha.as_str());
    let sent = world.fake.wait_sent_media(1, crate::support::WAIT).await;
    assert_eq!((sent[0].msg_type, sent[0].to.as_str()), (3, mom.as_str()));
    let upload = sent[0].upload.as_ref().unwrap();
    assert_eq!(
        (upload.sha256.as_str(), upload.name.as_str()),
        (sha.as_str(), "snap.jpg")
    );
    assert_eq!(
        world.fake.wait_sent(1, crate::support::WAIT).await[0].content,
        "door"
    );
    assert!(
        world.fake.violations().is_empty(),
        "{:?}",
        world.fake.violations()
    );
    bridge.stop().await;
}

#[tokio::test]
async fn when_only_the_text_fails_the_result_names_the_sent_media_and_it_is_not_sent_again() {
    let world = World::new().await;
    let mut bridge = run_with(&world, &media_config(&[], &[], "1MiB")).await;
    use base64::Engine as _;
    let photo = served_bytes("one.jpg", 2000);
    // The image is accepted; every send after it answers 1205.
    world.fake.fail_sends(1205, 1);
    let r = result_of(
        &mut bridge,
        json!({"to": "filehelper", "image": {"base64": base64::engine::general_purpose::STANDARD.encode(&photo),
               "name": "one.jpg"}, "text": "caption", "request_id": "half"}),
    )
    .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error"]["code"], "rate_limited", "{r}");
    let media = world.fake.sent_media();
    assert_eq!(
        media.len(),
        1,
        "the image went out once, retries were the text's"
    );
    assert_eq!(r["msg_id"], media[0].msg_id.as_str(), "{r}");
    assert_eq!(r["media"]["sha256"], sha256_hex(&photo).as_str());
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("the image was sent"), "{message}");
    assert!(
        world.fake.requests("webwxsendmsg").len() >= 2,
        "the text was retried"
    );
    assert_eq!(
        world.fake.requests("webwxuploadmedia").len(),
        1,
        "uploaded once"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn media_commands_keep_send_allow_and_request_id_idempotency() {
    let origin = Origin::start().await;
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    world.fake.add_contact("Eve", "Stranger");
    let mut bridge = Bridge::spawn_with_env(
        &world.config(&media_config(&["localhost"], &[], "1MiB")),
        &["run"],
        &[("WXBRIDGE__SEND__ALLOW__0", "Mom")],
    );
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    let url = origin.url("localhost", "/file/pic.jpg");
    let r = result_of(
        &mut bridge,
        json!({"to": "Stranger", "image": {"url": url}, "request_id": "not-allowed"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "forbidden", "{r}");
    assert!(
        world.fake.requests("webwxuploadmedia").is_empty(),
        "refused before the upload"
    );

    let command = json!({"to": "Mom", "image": {"url": url}, "request_id": "once"});
    let first = result_of(&mut bridge, command.clone()).await;
    assert_eq!(first["ok"], true, "{first}");
    let again = result_of(&mut bridge, command).await;
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["msg_id"], first["msg_id"]);
    assert_eq!(world.fake.sent_media().len(), 1, "sent once");
    assert_eq!(
        origin.hits("/file/pic.jpg"),
        2,
        "the refused command's fetch and the first; not the repeat's"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn a_slow_fetch_holds_up_no_other_source() {
    let origin = Origin::start().await;
    let world = World::new().await;
    let extra = media_config(&["localhost"], &[], "1MiB").replace("timeout: 2s", "timeout: 5s");
    let (mut bridge, api) = crate::http::start(&world, &extra, &[]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;
    // Its URL answers after 10 s: the fetch times out after 5.
    let slow = json!({"to": "filehelper", "image": {"url": origin.url("localhost", "/slow")},
                      "request_id": "slow"});
    bridge.send_line(slow.to_string().as_bytes()).await;
    tokio::time::timeout(crate::support::WAIT, async {
        while origin.hits("/slow") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the slow fetch started");
    let quick = api
        .request(reqwest::Method::POST, "/send")
        .json(&json!({"to": "filehelper", "text": "meanwhile", "request_id": "quick"}))
        .send()
        .await
        .unwrap();
    let quick: Value = quick.json().await.unwrap();
    assert_eq!(quick["ok"], true, "{quick}");
    let first = bridge
        .next_where("a result", |v| v["kind"] == "result")
        .await;
    assert_eq!(first["request_id"], "quick", "the text went first: {first}");
    let slow = bridge
        .next_where("the slow result", |v| {
            v["kind"] == "result" && v["request_id"] == "slow"
        })
        .await;
    assert_eq!(slow["error"]["code"], "media_fetch_failed", "{slow}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_media_echo_with_a_msg_id_of_its_own_is_still_the_bridges() {
    let world = World::new().await;
    world.fake.echo_sent_with_new_ids(true);
    let mut bridge = run_with(&world, &media_config(&[], &[], "1MiB")).await;
    use base64::Engine as _;
    let photo = served_bytes("echo.jpg", 2000);
    let r = result_of(
        &mut bridge,
        json!({"to": "filehelper", "image": {"base64": base64::engine::general_purpose::STANDARD.encode(&photo),
               "name": "echo.jpg"}, "request_id": "echo-new-id"}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let echo = bridge
        .seen_or_next("the image's echo", |v| {
            v["kind"] == "message" && v["type"] == "image"
        })
        .await;
    assert_ne!(
        echo["id"], r["msg_id"],
        "the echo has a MsgId of its own: {echo}"
    );
    assert_eq!(echo["origin"], "bridge", "{echo}");
    assert_eq!(echo["request_id"], "echo-new-id");
    bridge.stop().await;
}

#[tokio::test]
async fn an_upload_wechat_refuses_is_upload_failed_and_nothing_reaches_the_chat() {
    let world = World::new().await;
    let mut bridge = run_with(&world, &media_config(&[], &[], "1MiB")).await;
    world
        .fake
        .fault("webwxuploadmedia", wxbridge_fake::Fault::Status(503), 1);
    use base64::Engine as _;
    let photo = served_bytes("refused.jpg", 2000);
    let r = result_of(
        &mut bridge,
        json!({"to": "filehelper", "image": {"base64": base64::engine::general_purpose::STANDARD.encode(&photo),
               "name": "refused.jpg"}, "text": "caption", "request_id": "up-fail"}),
    )
    .await;
    assert_eq!(r["error"]["code"], "upload_failed", "{r}");
    assert_eq!(
        r["media"]["sha256"],
        sha256_hex(&photo).as_str(),
        "stored: send it again by sha256"
    );
    assert!(r.get("msg_id").is_none(), "{r}");
    assert!(world.fake.sent_media().is_empty());
    assert!(world.fake.sent().is_empty(), "nor the text");
    bridge.stop().await;
}
