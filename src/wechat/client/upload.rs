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
            let req = self.stamp(req, endpoint, &super::stamp::origin(&c.hosts.api));
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
            c,
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
        // A struct, not a json! object, to keep the official order (see `send_body`).
        let mut msg = MediaMsg {
            kind: 0,
            emoji_flag: None,
            media_id: None,
            content: None,
            signature: None,
            from_user_name: from,
            to_user_name: to,
            local_id: client_msg_id,
            client_msg_id,
        };
        let (endpoint, fun) = match message {
            MediaMessage::Image => {
                msg.kind = 3;
                msg.media_id = Some(&uploaded.media_id);
                msg.content = Some(String::new());
                ("webwxsendmsgimg", "async")
            }
            MediaMessage::Video => {
                msg.kind = 43;
                msg.media_id = Some(&uploaded.media_id);
                msg.content = Some(String::new());
                ("webwxsendvideomsg", "async")
            }
            MediaMessage::Emoticon => {
                msg.kind = 47;
                msg.emoji_flag = Some(2);
                msg.media_id = Some(&uploaded.media_id);
                ("webwxsendemoticon", "sys")
            }
            MediaMessage::File { title, size } => {
                msg.kind = 6;
                msg.content = Some(upload::file_appmsg(
                    title,
                    size,
                    &uploaded.media_id,
                    self.desktop_mode,
                ));
                msg.signature = uploaded.signature.as_deref();
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
            .body(super::session::send_body(c, msg));
        let req = self.stamp(req, endpoint, &super::stamp::origin(&c.hosts.api));
        self.send_answer(endpoint, req).await
    }
}

impl super::HasBaseResponse for CheckUploadResponse {
    fn base_response(&self) -> &crate::wechat::protocol::BaseResponse {
        &self.base_response
    }
}

#[cfg(test)]
mod tests;

/// The `Msg` of a media send, its members in the request table's order (PROTOCOL.md §9.3).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct MediaMsg<'a> {
    #[serde(rename = "Type")]
    kind: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    emoji_flag: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
    from_user_name: &'a str,
    to_user_name: &'a str,
    #[serde(rename = "LocalID")]
    local_id: &'a str,
    client_msg_id: &'a str,
}
