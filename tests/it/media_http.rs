//! The media store over HTTP, against the real binary: `GET /media/<sha256>` by token, page
//! cookie or signed link (and refused for a tampered, expired or borrowed signature), with
//! its type, length, ETag and ranges; multipart `POST /send` streaming a file into the store
//! and queueing its command, or refusing it past `media.fetch.max_bytes`; and files evicted
//! by size or age answering 404 and counted in `/metrics`.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use reqwest::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, COOKIE, ETAG, HOST, IF_NONE_MATCH,
    RANGE, SET_COOKIE,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;
use wxbridge::media::Signer;

use crate::http::{start, Api};
use crate::support::World;

const TOKEN: &str = "media-t0ken";

fn sha_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A PNG of `width` × `height` pixels.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::GrayImage::new(width, height)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn media_dir(world: &World) -> PathBuf {
    world.state_dir().join("media")
}

/// Puts `bytes` into the store before the bridge starts (it indexes the directory at open),
/// last used `ago`; answers the sha256.
fn seed(world: &World, bytes: &[u8], ago: Duration) -> String {
    let sha = sha_of(bytes);
    let shard = media_dir(world).join(&sha[..2]);
    std::fs::create_dir_all(&shard).unwrap();
    let path = shard.join(&sha);
    std::fs::write(&path, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
    sha
}

/// The signer the bridge will use: the key file is made before it starts.
fn signer(world: &World) -> Signer {
    std::fs::create_dir_all(world.state_dir()).unwrap();
    Signer::load_or_create(&world.state_dir()).unwrap()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Path and query of a signed link.
fn signed(signer: &Signer, api: &Api, sha: &str, exp: u64) -> String {
    let url = signer.url(&Url::parse(&api.base).unwrap(), sha, exp);
    format!("{}?{}", url.path(), url.query().unwrap())
}

async fn status(api: &Api, path: &str) -> StatusCode {
    api.get(path).await.status()
}

/// A `multipart/form-data` body: text fields, then files as (field, file name, bytes).
fn multipart(
    texts: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
    tail: &[(&str, &str)],
) -> Vec<u8> {
    let mut body = Vec::new();
    let text = |body: &mut Vec<u8>, name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    for (name, value) in texts {
        text(&mut body, name, value);
    }
    for (name, file_name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    for (name, value) in tail {
        text(&mut body, name, value);
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

const BOUNDARY: &str = "wxbridge-test-boundary-7d3f";

async fn post_multipart(api: &Api, body: Vec<u8>) -> reqwest::Response {
    api.request(Method::POST, "/send")
        .header(
            CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Every file under `dir`, recursively.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_in(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// A sample's value in `/metrics` text; 0 when absent.
async fn metric(api: &Api, line_start: &str) -> f64 {
    let text = api.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn signed_links_open_one_file_until_they_expire_and_nothing_else() {
    let world = World::new().await;
    let photo = seed(&world, &png(4, 3), Duration::ZERO);
    let other = seed(&world, b"another file", Duration::ZERO);
    let signer = signer(&world);
    let (_bridge, anonymous) = start(&world, &format!("  token: {TOKEN}\n"), &[]).await;
    let port = anonymous.base.rsplit(':').next().unwrap().to_owned();
    let later = unix_now() + 3600;

    let link = signed(&signer, &anonymous, &photo, later);
    let r = anonymous.get(&link).await;
    assert_eq!(r.status(), StatusCode::OK, "a valid link needs no token");
    assert_eq!(r.bytes().await.unwrap(), png(4, 3));
    let r = anonymous
        .request(Method::GET, &link)
        .header(HOST, format!("bridge.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a signed link is good by any host name (media.public_url)"
    );

    // Tampered: one hex digit of the signature changed.
    let (path, query) = link.split_once('?').unwrap();
    let sig_at = query.find("sig=").unwrap() + 4;
    let mut tampered = query.to_owned().into_bytes();
    tampered[sig_at] = if tampered[sig_at] == b'0' { b'1' } else { b'0' };
    let tampered = format!("{path}?{}", String::from_utf8(tampered).unwrap());
    // Expired, and one whose expiry was moved later by hand.
    let expired = signed(&signer, &anonymous, &photo, unix_now() - 1);
    let stretched = link.replace(&format!("exp={later}"), &format!("exp={}", later + 1));
    // A valid signature for another file.
    let borrowed = signed(&signer, &anonymous, &other, later).replace(&other, &photo);
    // Half a link.
    let half = format!("/media/{photo}?exp={later}");
    for (what, path) in [
        ("tampered", &tampered),
        ("expired", &expired),
        ("stretched", &stretched),
        ("borrowed", &borrowed),
        ("half", &half),
    ] {
        let r = anonymous.get(path).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}: {path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("PNG"), "{what}: no bytes");
        if what == "expired" {
            assert!(body.contains("expired"), "{body}");
        }
    }
    // Another key (another bridge's link) does not open this one.
    let stranger = Signer::from_secret(b"another bridge");
    assert_eq!(
        status(&anonymous, &signed(&stranger, &anonymous, &photo, later)).await,
        StatusCode::FORBIDDEN
    );

    // Without a link: the API's own rules.
    assert_eq!(
        status(&anonymous, &format!("/media/{photo}")).await,
        StatusCode::UNAUTHORIZED
    );
    let r = anonymous
        .request(Method::GET, &format!("/media/{photo}"))
        .header(HOST, format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "rebinding");
    let api = anonymous.with_token(TOKEN);
    assert_eq!(
        status(&api, &format!("/media/{photo}")).await,
        StatusCode::OK
    );
    let login = anonymous.get(&format!("/?token={TOKEN}")).await;
    let cookie = login.headers()[SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let r = anonymous
        .request(Method::GET, &format!("/media/{other}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the page cookie");
    assert_eq!(r.bytes().await.unwrap(), &b"another file"[..]);
}

#[tokio::test]
async fn media_is_served_with_its_type_length_etag_and_ranges() {
    let world = World::new().await;
    let image = png(64, 48);
    let sha = seed(&world, &image, Duration::ZERO);
    let (_bridge, api) = start(&world, "", &[]).await;
    let path = format!("/media/{sha}");
    let size = image.len();

    let r = api.get(&path).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h[CONTENT_TYPE], "image/png");
    assert_eq!(h[CONTENT_LENGTH], size.to_string().as_str());
    assert_eq!(h[ETAG], format!("\"{sha}\"").as_str());
    assert_eq!(h[ACCEPT_RANGES], "bytes");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap(), image);

    let r = api
        .request(Method::GET, &path)
        .header(IF_NONE_MATCH, format!("\"{sha}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.bytes().await.unwrap().is_empty());

    let range = |spec: &'static str| {
        let api = &api;
        let path = &path;
        async move {
            api.request(Method::GET, path)
                .header(RANGE, spec)
                .send()
                .await
                .unwrap()
        }
    };
    let r = range("bytes=0-9").await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()[CONTENT_RANGE],
        format!("bytes 0-9/{size}").as_str()
    );
    assert_eq!(r.headers()[CONTENT_LENGTH], "10");
    assert_eq!(r.bytes().await.unwrap(), &image[..10]);
    let r = range("bytes=-5").await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), &image[size - 5..]);
    let r = range("bytes=10-").await;
    assert_eq!(
        r.headers()[CONTENT_RANGE],
        format!("bytes 10-{}/{size}", size - 1).as_str()
    );
    assert_eq!(r.bytes().await.unwrap(), &image[10..]);
    let r = range("bytes=99999-").await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        r.headers()[CONTENT_RANGE],
        format!("bytes */{size}").as_str()
    );
    let r = range("bytes=0-1,5-6").await;
    assert_eq!(r.status(), StatusCode::OK, "several ranges: the whole file");
    assert_eq!(r.bytes().await.unwrap(), image);

    let unknown = sha_of(b"never stored");
    for path in [
        format!("/media/{unknown}"),
        format!("/media/{}", sha.to_uppercase()),
        format!("/media/{}", &sha[..63]),
        "/media/..%2F..%2Fmedia.key".to_owned(),
    ] {
        assert_eq!(status(&api, &path).await, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_multipart_send_streams_its_file_into_the_store_and_queues_the_command() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let (mut bridge, api) = start(&world, "", &["default_ttl: 5s"]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    // A text-only multipart command is sent like its JSON twin.
    let r = post_multipart(
        &api,
        multipart(
            &[
                ("to", "Mom"),
                ("text", "from a form"),
                ("request_id", "m-1"),
            ],
            &[],
            &[],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["request_id"], "m-1");
    assert_eq!(result["ok"], true, "{result}");
    assert!(world.fake.sent().iter().any(|m| m.content == "from a form"));

    // With a photo: stored by its sha256 before the command is queued.
    let photo = png(32, 32);
    let sha = sha_of(&photo);
    let r = post_multipart(
        &api,
        multipart(
            &[("to", "Mom"), ("request_id", "m-2")],
            &[("image", "C:\\camera\\snap.png", &photo)],
            &[("text", "the doorbell")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["kind"], "result");
    assert_eq!(result["request_id"], "m-2", "{result}");
    assert_ne!(result["error"]["code"], "media_too_large", "{result}");
    let stored = api.get(&format!("/media/{sha}")).await;
    assert_eq!(stored.status(), StatusCode::OK);
    assert_eq!(stored.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(stored.bytes().await.unwrap(), photo);
    let on_disk = media_dir(&world).join(&sha[..2]).join(&sha);
    assert_eq!(std::fs::read(on_disk).unwrap(), photo);
    assert_eq!(files_in(&media_dir(&world)).len(), 1, "no temp file left");

    // Two file parts, or a field the command does not have, are refused whole.
    let r = post_multipart(
        &api,
        multipart(
            &[("to", "Mom"), ("request_id", "m-3")],
            &[("image", "a.png", b"a"), ("file", "b.txt", b"b")],
            &[],
        ),
    )
    .await;
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["error"]["code"], "invalid_command", "{result}");
    assert_eq!(result["request_id"], "m-3");
    let r = post_multipart(
        &api,
        multipart(&[("to", "Mom"), ("text", "x"), ("colour", "red")], &[], &[]),
    )
    .await;
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["error"]["code"], "invalid_command", "{result}");
    assert!(result["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    let r = api
        .request(Method::POST, "/send")
        .header(CONTENT_TYPE, "multipart/form-data")
        .body("no boundary")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_multipart_file_over_the_cap_is_media_too_large_and_leaves_nothing() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let extra = "media:\n  fetch:\n    max_bytes: 64KiB\n";
    let (mut bridge, api) = start(&world, extra, &["default_ttl: 5s"]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let r = post_multipart(
        &api,
        multipart(
            &[("to", "Mom")],
            &[("file", "big.bin", &big)],
            &[("request_id", "too-big")],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let result: Value = r.json().await.unwrap();
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["code"], "media_too_large", "{result}");
    assert_eq!(
        result["request_id"], "too-big",
        "read from the field after the file"
    );
    assert!(files_in(&media_dir(&world)).is_empty(), "nothing kept");
    assert_eq!(
        status(&api, &format!("/media/{}", sha_of(&big))).await,
        StatusCode::NOT_FOUND
    );

    // Just under the cap is taken.
    let fits = &big[..64 * 1024];
    let r = post_multipart(
        &api,
        multipart(
            &[("to", "Mom"), ("request_id", "fits")],
            &[("file", "f.bin", fits)],
            &[],
        ),
    )
    .await;
    let result: Value = r.json().await.unwrap();
    assert_ne!(result["error"]["code"], "media_too_large", "{result}");
    assert_eq!(
        status(&api, &format!("/media/{}", sha_of(fits))).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn files_evicted_for_size_or_age_answer_404_and_are_counted() {
    let world = World::new().await;
    world.fake.add_contact("Alice", "Mom");
    let stale = seed(&world, &[1u8; 500], Duration::from_secs(40 * 86_400));
    let old = seed(&world, &[2u8; 600], Duration::from_secs(3600));
    let extra = "media:\n  max_bytes: 1000\n  max_file_bytes: 1000\n";
    let (mut bridge, api) = start(&world, extra, &["default_ttl: 5s"]).await;
    world.scan_and_confirm().await;
    bridge.wait_state("online").await;

    assert_eq!(
        status(&api, &format!("/media/{stale}")).await,
        StatusCode::NOT_FOUND,
        "unused for more than media.max_age (30d): evicted at start"
    );
    assert_eq!(status(&api, &format!("/media/{old}")).await, StatusCode::OK);
    assert_eq!(
        metric(
            &api,
            "wxbridge_media_evicted_total{reason=\"age\",account=\"test\"}"
        )
        .await,
        1.0
    );

    // 600 + 600 bytes do not fit in 1000: the least recently used goes.
    let new = [3u8; 600];
    let r = post_multipart(
        &api,
        multipart(
            &[("to", "Mom"), ("request_id", "e-1")],
            &[("file", "n.bin", &new)],
            &[],
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        status(&api, &format!("/media/{old}")).await,
        StatusCode::NOT_FOUND,
        "evicted for the new file"
    );
    assert_eq!(
        status(&api, &format!("/media/{}", sha_of(&new))).await,
        StatusCode::OK
    );
    assert_eq!(
        metric(
            &api,
            "wxbridge_media_evicted_total{reason=\"size\",account=\"test\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&api, "wxbridge_media_evicted_bytes_total").await,
        1100.0
    );
    assert_eq!(metric(&api, "wxbridge_media_stored_bytes").await, 600.0);
    assert_eq!(metric(&api, "wxbridge_media_stored_files").await, 1.0);
    assert!(!media_dir(&world).join(&old[..2]).join(&old).exists());
}
