//! Sending a file (PROTOCOL.md §9.2–§9.3): `webwxcheckupload` for large files, the chunked
//! `webwxuploadmedia` on the file host, and the send calls that name the MediaId it gives.
//!
//! The file is read one 512 KiB chunk at a time from the media store, so memory stays bounded
//! whatever its size: the form of one chunk is built, posted, and dropped before the next.
use std::path::Path;
use std::sync::atomic::Ordering;

use serde_json::json;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::{check_ret, garbage};
use super::{now_ms, Credentials, SendError, WxClient, WxError};
use crate::wechat::hosts::cgi;
use crate::wechat::protocol::upload::{
    self, CheckUploadResponse, UploadMediaRequest, UploadResponse, CHECKUPLOAD_ABOVE, CHUNK_BYTES,
};

/// A stored file to upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadFile<'a> {
    /// Where its bytes are.
    pub path: &'a Path,
    /// The name WeChat shows.
    pub name: &'a str,
    /// The MIME type its bytes show.
    pub mime: &'a str,
    /// Its length.
    pub size: u64,
    /// md5 of the whole file, lowercase hex ([`file_md5`]).
    pub md5: &'a str,
}

/// What an upload gives the send call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// `@crypt_…`.
    pub media_id: String,
    /// A large file's Signature from `webwxcheckupload`, which the send carries too.
    pub signature: Option<String>,
}

/// What to send once uploaded (PROTOCOL.md §9.3).
#[derive(Debug, Clone, Copy)]
pub enum MediaMessage<'a> {
    /// `webwxsendmsgimg`, Type 3.
    Image,
    /// `webwxsendvideomsg`, Type 43.
    Video,
    /// `webwxsendemoticon`, Type 47, EmojiFlag 2.
    Emoticon,
    /// `webwxsendappmsg`, Type 6, with the `<appmsg>` naming `title` and `size`.
    File {
        /// The file name.
        title: &'a str,
        /// Its length.
        size: u64,
    },
}

/// md5 of the file at `path`, lowercase hex, read in 64 KiB pieces off the async workers.
pub async fn file_md5(path: &Path) -> std::io::Result<String> {
    use md5::Digest;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = md5::Md5::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    })
    .await
    .map_err(std::io::Error::other)?
}

impl WxClient {
    /// Uploads `file` for a message from `from` to `to`, as the official client does: a file
    /// over 25 MiB is first named to `webwxcheckupload` (a MediaId in its answer means WeChat
    /// has it already: no upload), then the bytes go in 524288-byte chunks, each posted after
    /// the previous one was answered. The last answer's MediaId is the upload's.
    pub async fn upload_media(
        &self,
        c: &Credentials,
        from: &str,
        to: &str,
        file: UploadFile<'_>,
    ) -> Result<Uploaded, WxError> {
        let mut keys = None;
        if file.size > CHECKUPLOAD_ABOVE {
            let check = self.check_upload(c, from, to, &file).await?;
            if !check.media_id.is_empty() {
                return Ok(Uploaded {
                    media_id: check.media_id,
                    signature: Some(check.signature).filter(|s| !s.is_empty()),
                });
            }
            keys = Some((check.aes_key, check.signature));
        }
        let endpoint = "webwxuploadmedia";
        let url = cgi(&c.hosts.file, endpoint);
        let ticket =
            self.cookie_for(&url, "webwx_data_ticket")
                .ok_or_else(|| WxError::Garbage {
                    endpoint,
                    detail: "no webwx_data_ticket cookie for the file host".into(),
                })?;
        let request = UploadMediaRequest {
            upload_type: 2,
            base_request: c.base_request(),
            client_media_id: now_ms(),
            total_len: file.size,
            start_pos: 0,
            data_len: file.size,
            media_type: 4,
            from_user_name: from.to_owned(),
            to_user_name: to.to_owned(),
            file_md5: file.md5.to_owned(),
            aes_key: keys.as_ref().map(|k| k.0.clone()),
            signature: keys.as_ref().map(|k| k.1.clone()),
        };
        let request = serde_json::to_string(&request).map_err(garbage(endpoint))?;
        let id = format!(
            "WU_FILE_{}",
            self.upload_seq.fetch_add(1, Ordering::Relaxed)
        );
        let modified = upload::js_date(OffsetDateTime::now_utc());
        let chunks = upload::chunk_count(file.size);
        let mut reader = tokio::fs::File::open(file.path)
            .await
            .map_err(|e| WxError::Garbage {
                endpoint,
                detail: format!("cannot read the stored file: {e}"),
            })?;
        let mut buf = Vec::new();
        let mut last = None;
        for chunk in 0..chunks.unwrap_or(1) {
            let start = chunk * CHUNK_BYTES;
            let len = file.size.saturating_sub(start).min(CHUNK_BYTES);
            buf.resize(len as usize, 0);
            let read = async {
                reader.seek(std::io::SeekFrom::Start(start)).await?;
                reader.read_exact(&mut buf).await
            };
            read.await.map_err(|e| WxError::Garbage {
                endpoint,
                detail: format!("cannot read the stored file: {e}"),
            })?;
            let mut fields = vec![
                ("id", id.clone()),
                ("name", file.name.to_owned()),
                ("type", file.mime.to_owned()),
                ("lastModifiedDate", modified.clone()),
                ("size", file.size.to_string()),
            ];
            if let Some(count) = chunks {
                fields.push(("chunks", count.to_string()));
                fields.push(("chunk", chunk.to_string()));
            }
            fields.extend([
                ("mediatype", upload::upload_media_type(file.mime).to_owned()),
                ("uploadmediarequest", request.clone()),
                ("webwx_data_ticket", ticket.clone()),
                ("pass_ticket", c.ticket.pass_ticket.clone()),
            ]);
            let boundary = upload::new_boundary();
            let body = upload::multipart_body(&boundary, &fields, file.name, file.mime, &buf);
            let req = self
                .http
                .post(url.clone())
                .query(&[("f", "json")])
                .timeout(self.timeouts.request)
                .header(
                    "Content-Type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body);
            let text = self.ok_text(endpoint, req).await?;
            let answer: UploadResponse = serde_json::from_str(&text).map_err(garbage(endpoint))?;
            check_ret(endpoint, &answer.base_response)?;
            last = Some(answer);
        }
        match last {
            Some(answer) if !answer.media_id.is_empty() => Ok(Uploaded {
                media_id: answer.media_id,
                signature: keys.map(|k| k.1).filter(|s| !s.is_empty()),
            }),
            _ => Err(WxError::Garbage {
                endpoint,
                detail: "the last chunk's answer has no MediaId".into(),
            }),
        }
    }

    /// `webwxcheckupload` (FileType 7) for a file over 25 MiB.
    async fn check_upload(
        &self,
        c: &Credentials,
        from: &str,
        to: &str,
        file: &UploadFile<'_>,
    ) -> Result<CheckUploadResponse, WxError> {
        self.post_json(
            "webwxcheckupload",
            c.hosts.api_url("webwxcheckupload"),
            &Self::session_query(c),
            json!({
                "BaseRequest": c.base_request(),
                "FileMd5": file.md5,
                "FileName": file.name,
                "FileSize": file.size,
                "FileType": 7,
                "FromUserName": from,
                "ToUserName": to,
            }),
        )
        .await
    }

    /// Sends an uploaded file as `message`; answers WeChat's MsgID, its Ret mapped as for a
    /// text (PROTOCOL.md §9.3: the same envelope and answer as §9.1).
    pub async fn send_media(
        &self,
        c: &Credentials,
        from: &str,
        to: &str,
        message: MediaMessage<'_>,
        uploaded: &Uploaded,
        client_msg_id: &str,
    ) -> Result<String, SendError> {
        let mut msg = json!({
            "FromUserName": from,
            "ToUserName": to,
            "LocalID": client_msg_id,
            "ClientMsgId": client_msg_id,
        });
        let (endpoint, fun) = match message {
            MediaMessage::Image => {
                msg["Type"] = json!(3);
                msg["MediaId"] = json!(uploaded.media_id);
                msg["Content"] = json!("");
                ("webwxsendmsgimg", "async")
            }
            MediaMessage::Video => {
                msg["Type"] = json!(43);
                msg["MediaId"] = json!(uploaded.media_id);
                msg["Content"] = json!("");
                ("webwxsendvideomsg", "async")
            }
            MediaMessage::Emoticon => {
                msg["Type"] = json!(47);
                msg["EmojiFlag"] = json!(2);
                msg["MediaId"] = json!(uploaded.media_id);
                ("webwxsendemoticon", "sys")
            }
            MediaMessage::File { title, size } => {
                msg["Type"] = json!(6);
                msg["Content"] = json!(upload::file_appmsg(
                    title,
                    size,
                    &uploaded.media_id,
                    self.desktop_mode
                ));
                if let Some(signature) = &uploaded.signature {
                    msg["Signature"] = json!(signature);
                }
                ("webwxsendappmsg", "async")
            }
        };
        let mut query = vec![("fun", fun.to_owned())];
        if fun == "async" {
            query.push(("f", "json".to_owned()));
        }
        if self.desktop_mode && matches!(message, MediaMessage::File { .. }) {
            query.push(("mod", "desktop".to_owned()));
        }
        query.extend(Self::session_query(c));
        let req = self
            .http
            .post(c.hosts.api_url(endpoint))
            .query(&query)
            .timeout(self.timeouts.request)
            .header("Content-Type", "application/json;charset=UTF-8")
            .body(json!({ "BaseRequest": c.base_request(), "Msg": msg, "Scene": 0 }).to_string());
        self.send_answer(endpoint, req).await
    }
}

impl super::HasBaseResponse for CheckUploadResponse {
    fn base_response(&self) -> &crate::wechat::protocol::BaseResponse {
        &self.base_response
    }
}

#[cfg(test)]
mod tests {
    //! The upload and the send calls against a small recording server on 127.0.0.1, which
    //! takes the multipart forms apart as a strict server would.
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
        let req: serde_json::Value =
            serde_json::from_slice(field(&p, "uploadmediarequest")).unwrap();
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
}
