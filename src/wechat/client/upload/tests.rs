//! Unit tests of `upload`: the upload and the send calls against a small recording server on
//! 127.0.0.1, which takes the multipart forms apart as a strict server would.
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

use super::*;
use crate::wechat::client::Timeouts;
use crate::wechat::hosts::Hosts;
use crate::wechat::protocol::LoginTicket;

/// One request: the path with its query, and its body.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    content_type: String,
    body: Vec<u8>,
}

/// Answers every request in order, keep-alive included, and records it.
async fn server() -> (Url, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0u8; 65536];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                            })
                            .unwrap_or_default()
                    };
                    let len: usize = header("content-length").parse().unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 65536];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + len].to_vec();
                    buf.drain(..head_end + len);
                    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    let answer = if target.contains("webwxuploadmedia") {
                        r#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MediaId":"@crypt_up","StartPos":1}"#
                    } else if target.contains("webwxcheckupload") {
                        r#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MediaId":"","AESKey":"aes1","Signature":"sig1","EncryFileName":"x"}"#
                    } else {
                        r#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MsgID":"4242","LocalID":"1"}"#
                    };
                    log.lock().unwrap().push(Seen {
                        target,
                        content_type: header("content-type"),
                        body,
                    });
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, seen)
}

fn client_for(base: &Url, desktop: bool) -> (WxClient, Credentials) {
    let client = WxClient::new(base.clone(), desktop, Timeouts::default());
    client
        .jar
        .lock()
        .unwrap()
        .parse("webwx_data_ticket=T1cket; Path=/", base)
        .unwrap();
    let creds = Credentials {
        hosts: Hosts::from_redirect(base),
        ticket: LoginTicket {
            skey: "@crypt_k".into(),
            wxsid: "sid".into(),
            wxuin: 42,
            pass_ticket: "pt%2B".into(),
        },
        device_id: "e123456789012345".into(),
    };
    (client, creds)
}

/// The fields of a multipart body, in order: (name, value bytes).
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type.split("boundary=").nth(1).unwrap();
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delim.as_bytes()) {
        rest = &rest[at + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let name = head
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let value_start = head_end + 4;
        let next = find(&rest[value_start..], delim.as_bytes()).unwrap();
        out.push((name, rest[value_start..value_start + next - 2].to_vec()));
        rest = &rest[value_start + next..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn field<'a>(parts: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &parts.iter().find(|(n, _)| n == name).unwrap().1
}

async fn upload(
    client: &WxClient,
    creds: &Credentials,
    bytes: &[u8],
    name: &str,
    mime: &str,
) -> Uploaded {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    let md5 = file_md5(&path).await.unwrap();
    let file = UploadFile {
        path: &path,
        name,
        mime,
        size: bytes.len() as u64,
        md5: &md5,
    };
    client
        .upload_media(creds, "@me", "@you", file)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_small_file_is_one_plain_part_with_every_field_in_order() {
    let (base, seen) = server().await;
    let (client, creds) = client_for(&base, false);
    let up = upload(&client, &creds, b"\x89PNG tiny", "a.png", "image/png").await;
    assert_eq!(
        up,
        Uploaded {
            media_id: "@crypt_up".into(),
            signature: None
        }
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "no checkupload for a small file");
    assert_eq!(
        seen[0].target,
        "/cgi-bin/mmwebwx-bin/webwxuploadmedia?f=json"
    );
    let p = parts(&seen[0].content_type, &seen[0].body);
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "name",
            "type",
            "lastModifiedDate",
            "size",
            "mediatype",
            "uploadmediarequest",
            "webwx_data_ticket",
            "pass_ticket",
            "filename"
        ]
    );
    assert_eq!(field(&p, "id"), b"WU_FILE_0");
    assert_eq!(field(&p, "type"), b"image/png");
    assert_eq!(field(&p, "size"), b"9");
    assert_eq!(field(&p, "mediatype"), b"pic");
    assert_eq!(field(&p, "webwx_data_ticket"), b"T1cket");
    assert_eq!(field(&p, "pass_ticket"), b"pt%2B");
    assert_eq!(field(&p, "filename"), b"\x89PNG tiny");
    let req: serde_json::Value = serde_json::from_slice(field(&p, "uploadmediarequest")).unwrap();
    assert_eq!(req["UploadType"], 2);
    assert_eq!(req["MediaType"], 4);
    assert_eq!(
        (
            req["TotalLen"].as_u64(),
            req["DataLen"].as_u64(),
            req["StartPos"].as_u64()
        ),
        (Some(9), Some(9), Some(0))
    );
    assert_eq!(req["FromUserName"], "@me");
    assert_eq!(req["ToUserName"], "@you");
    assert_eq!(req["FileMd5"], "81d5997815d9af3130527c3b45fb236c");
    assert_eq!(req["BaseRequest"]["Uin"], 42);
    assert!(req.get("AESKey").is_none());
}

#[tokio::test]
async fn a_large_file_is_checked_then_sent_in_524288_byte_chunks_with_its_signature() {
    let (base, seen) = server().await;
    let (client, creds) = client_for(&base, true);
    let size = 26 * 1024 * 1024 + 5;
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let up = upload(&client, &creds, &bytes, "big.zip", "application/zip").await;
    assert_eq!(up.signature.as_deref(), Some("sig1"));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen[0]
            .target
            .starts_with("/cgi-bin/mmwebwx-bin/webwxcheckupload?"),
        "{}",
        seen[0].target
    );
    let check: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(check["FileType"], 7);
    assert_eq!(check["FileSize"], size);
    assert_eq!(check["FileName"], "big.zip");
    let uploads = &seen[1..];
    assert_eq!(uploads.len(), 53);
    let mut joined = Vec::new();
    for (i, s) in uploads.iter().enumerate() {
        let p = parts(&s.content_type, &s.body);
        assert_eq!(field(&p, "chunks"), b"53");
        assert_eq!(field(&p, "chunk"), i.to_string().as_bytes());
        assert_eq!(field(&p, "mediatype"), b"doc");
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(&names[4..7], ["size", "chunks", "chunk"]);
        let chunk = field(&p, "filename");
        assert!(
            chunk.len() == 524_288 || i == 52,
            "chunk {i} is {} bytes",
            chunk.len()
        );
        joined.extend_from_slice(chunk);
        let req: serde_json::Value =
            serde_json::from_slice(field(&p, "uploadmediarequest")).unwrap();
        assert_eq!(
            (req["AESKey"].as_str(), req["Signature"].as_str()),
            (Some("aes1"), Some("sig1"))
        );
        assert_eq!(req["StartPos"], 0, "every chunk carries the same request");
    }
    assert!(joined == bytes, "the chunks put together are the file");
}

#[tokio::test]
async fn each_kind_is_sent_by_its_endpoint_with_its_type() {
    let (base, seen) = server().await;
    let (client, creds) = client_for(&base, true);
    let up = Uploaded {
        media_id: "@crypt_m".into(),
        signature: Some("sig1".into()),
    };
    for message in [
        MediaMessage::Image,
        MediaMessage::Video,
        MediaMessage::Emoticon,
        MediaMessage::File {
            title: "a.pdf",
            size: 48213,
        },
    ] {
        let id = client
            .send_media(&creds, "@me", "@you", message, &up, "17000000000000001")
            .await
            .unwrap();
        assert_eq!(id, "4242");
    }
    let seen = seen.lock().unwrap().clone();
    let body = |i: usize| serde_json::from_slice::<serde_json::Value>(&seen[i].body).unwrap();
    assert!(
        seen[0]
            .target
            .starts_with("/cgi-bin/mmwebwx-bin/webwxsendmsgimg?fun=async&f=json&"),
        "{}",
        seen[0].target
    );
    assert_eq!(
        (
            body(0)["Msg"]["Type"].as_u64(),
            body(0)["Msg"]["MediaId"].as_str()
        ),
        (Some(3), Some("@crypt_m"))
    );
    assert!(seen[1]
        .target
        .starts_with("/cgi-bin/mmwebwx-bin/webwxsendvideomsg?fun=async&f=json&"));
    assert_eq!(body(1)["Msg"]["Type"], 43);
    assert!(seen[2]
        .target
        .starts_with("/cgi-bin/mmwebwx-bin/webwxsendemoticon?fun=sys&"));
    assert_eq!(
        (
            body(2)["Msg"]["Type"].as_u64(),
            body(2)["Msg"]["EmojiFlag"].as_u64()
        ),
        (Some(47), Some(2))
    );
    assert!(
        seen[3]
            .target
            .starts_with("/cgi-bin/mmwebwx-bin/webwxsendappmsg?fun=async&f=json&mod=desktop&"),
        "{}",
        seen[3].target
    );
    let file = body(3);
    assert_eq!(file["Msg"]["Type"], 6);
    assert_eq!(file["Msg"]["Signature"], "sig1");
    assert_eq!(
        file["Msg"]["Content"],
        upload::file_appmsg("a.pdf", 48213, "@crypt_m", true)
    );
    for i in 0..4 {
        assert_eq!(body(i)["Msg"]["FromUserName"], "@me");
        assert_eq!(body(i)["Msg"]["ToUserName"], "@you");
        assert_eq!(body(i)["Msg"]["ClientMsgId"], body(i)["Msg"]["LocalID"]);
        assert_eq!(body(i)["Scene"], 0);
    }
}
