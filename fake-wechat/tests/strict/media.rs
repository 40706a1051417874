//! Media downloads (§9.5): bytes of the right kind for every media message, on the right
//! endpoint with the right headers, Range on videos, and nothing (plus a recorded violation)
//! for a client that breaks a rule.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use wxbridge_fake::{FakeWeChat, Msg, Violation};

use crate::support::{logged_in, start, Client};

/// A GET of a download endpoint with `query` and optional extra headers.
async fn get(
    c: &Client,
    endpoint: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = c.http.get(c.cgi(endpoint)).query(query);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default()
}

fn data_ticket(fake: &FakeWeChat) -> String {
    fake.requests("webwxinit")[0]
        .cookie("webwx_data_ticket")
        .expect("the session's data ticket cookie")
}

/// The query the official client sends to webwxgetmedia for a file message.
fn media_query(fake: &FakeWeChat, c: &Client, entry: &Msg, from: &str) -> Vec<(String, String)> {
    let field = |k: &str| entry.field(k).and_then(|v| v.as_str()).unwrap().to_owned();
    vec![
        ("sender".into(), from.to_owned()),
        ("mediaid".into(), field("MediaId")),
        ("encryfilename".into(), field("EncryFileName")),
        ("fromuser".into(), c.uin.clone()),
        ("pass_ticket".into(), c.pass_ticket.clone()),
        ("webwx_data_ticket".into(), data_ticket(fake)),
    ]
}

async fn get_media(c: &Client, query: &[(String, String)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let q: Vec<(&str, &str)> = query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    get(c, "webwxgetmedia", &q, &[]).await
}

#[tokio::test]
async fn every_media_kind_downloads_as_bytes_of_its_kind() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    let image = fake.queue(
        Msg::image(&friend)
            .with("ImgWidth", 640.into())
            .with("ImgHeight", 480.into()),
    );
    let other = fake.queue(Msg::image(&friend));
    let voice = fake.queue(Msg::voice(&friend, 4_000));
    let emoticon = fake.queue(Msg::emoticon(&friend));
    let skey = c.skey.clone();
    let img = |id: &str| {
        vec![
            ("MsgID", id.to_owned()),
            ("skey", skey.clone()),
            ("type", "big".into()),
        ]
    };
    let q =
        |v: &[(&'static str, String)]| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();

    let query = q(&img(&image.msg_id));
    let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // A gzip-accepting client still gets the bytes as they are.
    let (status, h, body) = get(&c, "webwxgetmsgimg", &query, &[("accept-encoding", "gzip")]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "image/jpeg");
    assert_eq!(header(&h, "cache-control"), "max-age=604800");
    assert!(h.get("content-encoding").is_none());
    assert_eq!(header(&h, "content-length"), body.len().to_string());
    assert!(body.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert_eq!(body, fake.media_bytes(&image.msg_id).unwrap());
    let other_bytes = fake.media_bytes(&other.msg_id).unwrap();
    assert_ne!(body, other_bytes, "two images share bytes");

    // The thumbnail is another, smaller JPEG.
    let slave = [
        ("MsgID", image.msg_id.as_str()),
        ("skey", &c.skey),
        ("type", "slave"),
    ];
    let (_, _, thumb) = get(&c, "webwxgetmsgimg", &slave, &[]).await;
    assert!(thumb.starts_with(&[0xFF, 0xD8, 0xFF]) && thumb.len() < body.len());

    let (_, h, mp3) = get(
        &c,
        "webwxgetvoice",
        &[("msgid", &voice.msg_id), ("skey", &c.skey)],
        &[],
    )
    .await;
    assert_eq!(header(&h, "content-type"), "audio/mpeg");
    assert!(mp3.starts_with(b"ID3"));
    assert_eq!(mp3, fake.media_bytes(&voice.msg_id).unwrap());

    // Emoticons come from webwxgetmsgimg too, as a GIF under image/jpeg (as captured).
    let (_, h, gif) = get(
        &c,
        "webwxgetmsgimg",
        &[
            ("MsgID", &emoticon.msg_id),
            ("skey", &c.skey),
            ("type", "big"),
        ],
        &[],
    )
    .await;
    assert_eq!(header(&h, "content-type"), "image/jpeg");
    assert!(gif.starts_with(b"GIF89a"));

    // itchat's lowercase msgid, with the NewMsgId.
    let new_id = image.new_msg_id.to_string();
    let (_, _, again) = get(
        &c,
        "webwxgetmsgimg",
        &[("msgid", &new_id), ("skey", &c.skey)],
        &[],
    )
    .await;
    assert_eq!(again, body);
    assert_eq!(fake.downloads(&image.msg_id), 3, "big, slave, big again");
    assert_eq!(fake.violations(), vec![]);
    assert_eq!(fake.requests("webwxgetmsgimg").len(), 4);
}

#[tokio::test]
async fn a_video_answers_206_with_content_range_and_nothing_without_range() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    let len = 3 * 1024 * 1024 + 17;
    let video = fake.queue(Msg::video(&friend, 12).media_len(len));
    let whole = fake.media_bytes(&video.msg_id).unwrap();
    assert_eq!(whole.len() as u64, len);
    assert_eq!(&whole[4..8], b"ftyp");
    let q = [("msgid", video.msg_id.as_str()), ("skey", c.skey.as_str())];

    let (status, h, body) = get(&c, "webwxgetvideo", &q, &[("range", "bytes=0-")]).await;
    assert_eq!(status, 206);
    assert_eq!(header(&h, "content-type"), "video/mp4");
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert_eq!(
        header(&h, "content-range"),
        format!("bytes 0-{}/{len}", len - 1)
    );
    assert_eq!(body, whole);

    let (status, h, part) = get(&c, "webwxgetvideo", &q, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(status, 206);
    assert_eq!(
        header(&h, "content-range"),
        format!("bytes 1000-1999/{len}")
    );
    assert_eq!(part, whole[1000..2000]);
    let (status, _, _) = get(
        &c,
        "webwxgetvideo",
        &q,
        &[("range", format!("bytes={len}-").as_str())],
    )
    .await;
    assert_eq!(status, 416);
    assert_eq!(fake.violations(), vec![]);

    let (status, _, nothing) = get(&c, "webwxgetvideo", &q, &[]).await;
    assert_eq!((status, nothing.len()), (StatusCode::OK, 0));
    assert_eq!(
        fake.violations(),
        vec![Violation {
            endpoint: "webwxgetvideo".into(),
            rule: "webwxgetvideo without a Range header".into()
        }]
    );
}

#[tokio::test]
async fn a_download_outside_the_session_gets_200_and_nothing() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    let image = fake.queue(Msg::image(&friend));
    let id = image.msg_id.as_str();
    let (status, _, body) = get(
        &c,
        "webwxgetmsgimg",
        &[("MsgID", id), ("skey", "@crypt_0_0")],
        &[],
    )
    .await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    let (_, _, body) = get(&c, "webwxgetmsgimg", &[("MsgID", id)], &[]).await;
    assert!(body.is_empty());
    let bare = reqwest::Client::new();
    let body = bare
        .get(c.cgi("webwxgetmsgimg"))
        .query(&[("MsgID", id), ("skey", &c.skey)])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body.is_empty(), "no cookies, no bytes");
    // The wrong endpoint for the kind, and an unknown id.
    let (_, _, body) = get(
        &c,
        "webwxgetvoice",
        &[("msgid", id), ("skey", &c.skey)],
        &[],
    )
    .await;
    assert!(body.is_empty());
    let (_, _, body) = get(
        &c,
        "webwxgetmsgimg",
        &[("MsgID", "1"), ("skey", &c.skey)],
        &[],
    )
    .await;
    assert!(body.is_empty());
    let rules: Vec<String> = fake.violations().into_iter().map(|v| v.rule).collect();
    assert_eq!(rules.len(), 5, "{rules:?}");
    assert_eq!(fake.downloads(id), 0);
}

#[tokio::test]
async fn a_file_downloads_from_the_file_host_with_every_parameter_checked() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    let msg = Msg::file(&friend, "report 1.pdf", 48_213).media_len(70_000);
    assert_eq!(msg.field("FileSize").unwrap(), "70000");
    let content = msg.field("Content").unwrap().as_str().unwrap();
    assert!(content.contains("&lt;totallen&gt;70000&lt;/totallen&gt;"));
    let good = media_query(&fake, &c, &msg, &friend);
    let file = fake.queue(msg);

    let (status, h, body) = get_media(&c, &good).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "application/octet-stream");
    assert_eq!(
        header(&h, "content-disposition"),
        "attachment; filename=\"report 1.pdf\""
    );
    assert_eq!(body.len(), 70_000);
    assert!(body.starts_with(b"%PDF-"));
    assert_eq!(body, fake.media_bytes(&file.msg_id).unwrap());
    // itchat: filename instead of encryfilename, pass_ticket "undefined".
    let mut itchat = good.clone();
    itchat[2] = ("filename".into(), "report 1.pdf".into());
    itchat[4].1 = "undefined".into();
    let (_, _, body) = get_media(&c, &itchat).await;
    assert_eq!(body.len(), 70_000);
    assert_eq!(fake.violations(), vec![]);

    let broken: Vec<(usize, &str)> = vec![
        (0, "@someoneelse"),
        (1, "@crypt_00_00"),
        (2, "other.pdf"),
        (3, "12345"),
        (4, "wrong"),
        (5, "not-the-ticket"),
    ];
    for (i, value) in &broken {
        let mut q = good.clone();
        q[*i].1 = (*value).to_owned();
        let (status, _, body) = get_media(&c, &q).await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0), "{}", q[*i].0);
        let mut q = good.clone();
        q.remove(*i);
        let (_, _, body) = get_media(&c, &q).await;
        assert!(body.is_empty(), "without {}", good[*i].0);
    }
    assert_eq!(fake.violations().len(), 2 * broken.len());
    assert_eq!(fake.downloads(&file.msg_id), 2);
}

#[tokio::test]
async fn expired_media_and_store_stickers_answer_nothing_without_a_violation() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    let voice = fake.queue(Msg::voice(&friend, 1_000));
    let sticker = fake.queue(Msg::emoticon(&friend).with("HasProductId", 1.into()));
    fake.expire_media(&voice.msg_id);
    let (status, h, body) = get(
        &c,
        "webwxgetvoice",
        &[("msgid", &voice.msg_id), ("skey", &c.skey)],
        &[],
    )
    .await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(header(&h, "content-length"), "0");
    let (_, _, body) = get(
        &c,
        "webwxgetmsgimg",
        &[
            ("MsgID", &sticker.msg_id),
            ("skey", &c.skey),
            ("type", "big"),
        ],
        &[],
    )
    .await;
    assert!(body.is_empty());
    assert_eq!(fake.violations(), vec![]);
    assert_eq!(fake.downloads(&voice.msg_id), 0);
}

#[tokio::test]
async fn a_stalled_download_sends_its_first_part_then_waits() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    let video = fake.queue(Msg::video(&friend, 3).media_len(400_000));
    fake.set_media_delay(Duration::from_secs(30));
    let mut resp = c
        .http
        .get(c.cgi("webwxgetvideo"))
        .query(&[("msgid", &video.msg_id), ("skey", &c.skey)])
        .header("range", "bytes=0-")
        .send()
        .await
        .unwrap();
    // Read until the body stops coming: only its first part arrived.
    let mut got = 0;
    while let Ok(chunk) = tokio::time::timeout(Duration::from_millis(500), resp.chunk()).await {
        got += chunk
            .unwrap()
            .expect("the body ended during the stall")
            .len();
    }
    assert!(got > 0 && got <= 200_000, "{got} bytes before the stall");
    assert_eq!(
        (
            fake.downloads(&video.msg_id),
            fake.downloads_completed(&video.msg_id)
        ),
        (1, 0)
    );
    drop(resp);

    // Unstalled (and slowed instead), the next download runs to the end.
    fake.set_media_delay(Duration::ZERO);
    fake.set_media_rate(4_000_000);
    let q = [("msgid", video.msg_id.as_str()), ("skey", c.skey.as_str())];
    let (_, _, body) = get(&c, "webwxgetvideo", &q, &[("range", "bytes=0-")]).await;
    assert_eq!(body, fake.media_bytes(&video.msg_id).unwrap());
    assert_eq!(fake.downloads(&video.msg_id), 2);
    assert_eq!(fake.downloads_completed(&video.msg_id), 1);
}
