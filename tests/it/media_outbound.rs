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
