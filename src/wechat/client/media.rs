//! Downloads of a message's media (PROTOCOL.md §9.5): the request each kind needs, and the
//! answer handed back as a stream of chunks, so a video is never held in memory whole. What
//! is done with the bytes (hashing, the store) is the caller's; this file knows only the
//! protocol.
//!
//! | kind | request |
//! |---|---|
//! | image, emoticon | `GET <api>/webwxgetmsgimg?MsgID=<MsgId>&skey=<skey>&type=big` |
//! | voice | `GET <api>/webwxgetvoice?msgid=<MsgId>&skey=<skey>` |
//! | video | `GET <api>/webwxgetvideo?msgid=<MsgId>&skey=<skey>` with `Range: bytes=0-`, answered 206 |
//! | file | `GET <file>/webwxgetmedia?sender=…&mediaid=…&encryfilename=…&fromuser=<wxuin>&pass_ticket=…&webwx_data_ticket=<cookie>` |
//!
//! Every request carries `Referer: <api host>/` as the official client's do (openwechat sends
//! it on attachment downloads). A 404 or 410, or a 2xx with an empty body, means WeChat no
//! longer has the file ([`DownloadError::Gone`]): the web servers answer media past its
//! retention with nothing to download.
use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE};
use thiserror::Error;

use serde_json::value::RawValue;

use super::{host_of, Credentials, WxClient, WxError};
use crate::event::{MediaKind, MessageEvent};
use crate::wechat::hosts::cgi;

/// Which download endpoint a message's media comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEndpoint {
    /// `webwxgetmsgimg` (`type=big`): images and emoticons.
    MsgImg,
    /// `webwxgetvoice`.
    Voice,
    /// `webwxgetvideo`, with a range request.
    Video,
    /// `webwxgetmedia` on the file host: attachments (AppMsgType 6).
    Attachment,
}

/// What a download request names; the fields an endpoint does not use may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRequest {
    /// The endpoint.
    pub endpoint: MediaEndpoint,
    /// MsgId.
    pub msg_id: String,
    /// Attachments: the message's FromUserName.
    pub sender: String,
    /// Attachments: MediaId.
    pub media_id: String,
    /// Attachments: EncryFileName.
    pub encry_file_name: String,
}

impl MediaRequest {
    /// The download request of `event`'s media, and the size the message announces: a file's
    /// FileSize, the `length` of a voice note's or video's XML. An image's `length` is that of a
    /// smaller rendition than `type=big` serves, so images are checked on their answer alone.
    pub fn for_event(event: &MessageEvent) -> Option<(MediaRequest, Option<u64>)> {
        let mut req = MediaRequest {
            endpoint: MediaEndpoint::MsgImg,
            msg_id: event.id.clone(),
            sender: String::new(),
            media_id: String::new(),
            encry_file_name: String::new(),
        };
        if let Some(media) = &event.media {
            req.msg_id = media.msg_id.clone();
            req.endpoint = match media.kind {
                MediaKind::Image | MediaKind::Emoticon => MediaEndpoint::MsgImg,
                MediaKind::Voice => MediaEndpoint::Voice,
                MediaKind::Video => MediaEndpoint::Video,
            };
            let announced = match media.kind {
                MediaKind::Voice | MediaKind::Video => {
                    announced_length(&Attachment::from_raw(&event.raw).content)
                }
                MediaKind::Image | MediaKind::Emoticon => None,
            };
            return Some((req, announced));
        }
        let file = event.file.as_ref()?;
        // What the event does not carry, the raw entry does.
        let raw = Attachment::from_raw(&event.raw);
        req.endpoint = MediaEndpoint::Attachment;
        req.sender = raw.from_user_name;
        req.media_id = if file.media_id.is_empty() {
            raw.media_id
        } else {
            file.media_id.clone()
        };
        req.encry_file_name = raw.encry_file_name;
        Some((req, file.size))
    }
}

/// The fields of a raw AddMsgList entry an attachment download needs.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Attachment {
    from_user_name: String,
    media_id: String,
    encry_file_name: String,
    content: String,
}

impl Attachment {
    fn from_raw(raw: &RawValue) -> Attachment {
        serde_json::from_str(raw.get()).unwrap_or_default()
    }
}

/// The `length="…"` attribute of a message's (escaped or plain) XML: ` length=` with a space
/// before it, so `voicelength`, `playlength` and `cdnthumblength` are passed over.
pub fn announced_length(content: &str) -> Option<u64> {
    [" length=&quot;", " length=\""].iter().find_map(|marker| {
        let at = content.find(marker)? + marker.len();
        let digits: String = content[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// Why a download gave no bytes.
#[derive(Debug, Error)]
pub enum DownloadError {
    /// WeChat no longer has it (404, 410, or an empty answer).
    #[error("{endpoint}: WeChat no longer has this file (HTTP {status})")]
    Gone {
        /// The endpoint name.
        endpoint: &'static str,
        /// The status answered.
        status: u16,
    },
    /// The answer announced more than the caller accepts; nothing was read.
    #[error("{endpoint}: the file is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// The endpoint name.
        endpoint: &'static str,
        /// What the answer announced.
        size: u64,
        /// The caller's limit.
        limit: u64,
    },
    /// Anything else: worth another try.
    #[error(transparent)]
    Failed(#[from] WxError),
}

/// A download under way: its announced length and its body, chunk by chunk.
#[derive(Debug)]
pub struct Download {
    endpoint: &'static str,
    resp: reqwest::Response,
    len: Option<u64>,
    read: u64,
}

impl Download {
    /// The length the answer announced, if any.
    pub fn announced_len(&self) -> Option<u64> {
        self.len
    }

    /// The next chunk of the body; `None` at its end. A body that ends with nothing read is
    /// [`DownloadError::Gone`]; a transport error is [`DownloadError::Failed`].
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, DownloadError> {
        let endpoint = self.endpoint;
        let chunk = self.resp.chunk().await.map_err(|source| WxError::Http {
            endpoint,
            host: source.url().map(host_of).unwrap_or_default(),
            source: source.without_url(),
        })?;
        match chunk {
            Some(c) => {
                self.read += c.len() as u64;
                Ok(Some(c))
            }
            None if self.read == 0 => Err(DownloadError::Gone {
                endpoint,
                status: self.resp.status().as_u16(),
            }),
            None => Ok(None),
        }
    }
}

impl MediaEndpoint {
    fn name(self) -> &'static str {
        match self {
            MediaEndpoint::MsgImg => "webwxgetmsgimg",
            MediaEndpoint::Voice => "webwxgetvoice",
            MediaEndpoint::Video => "webwxgetvideo",
            MediaEndpoint::Attachment => "webwxgetmedia",
        }
    }
}

/// The total length a `Content-Range: bytes 0-99/100` names.
fn range_total(value: &str) -> Option<u64> {
    value.rsplit_once('/')?.1.trim().parse().ok()
}

impl WxClient {
    /// Starts the download `req` names (see the module docs). An answer that announces more
    /// than `limit` bytes is [`DownloadError::TooLarge`] before any of its body is read.
    pub async fn download(
        &self,
        c: &Credentials,
        req: &MediaRequest,
        limit: u64,
    ) -> Result<Download, DownloadError> {
        let endpoint = req.endpoint.name();
        let skey = c.ticket.skey.clone();
        let (url, query): (_, Vec<(&str, String)>) = match req.endpoint {
            MediaEndpoint::MsgImg => (
                c.hosts.api_url(endpoint),
                vec![
                    ("MsgID", req.msg_id.clone()),
                    ("skey", skey),
                    ("type", "big".into()),
                ],
            ),
            MediaEndpoint::Voice | MediaEndpoint::Video => (
                c.hosts.api_url(endpoint),
                vec![("msgid", req.msg_id.clone()), ("skey", skey)],
            ),
            MediaEndpoint::Attachment => {
                let url = cgi(&c.hosts.file, endpoint);
                let ticket = self
                    .cookie_for(&url, "webwx_data_ticket")
                    .unwrap_or_default();
                (
                    url,
                    vec![
                        ("sender", req.sender.clone()),
                        ("mediaid", req.media_id.clone()),
                        ("encryfilename", req.encry_file_name.clone()),
                        ("fromuser", c.ticket.wxuin.to_string()),
                        ("pass_ticket", c.ticket.pass_ticket.clone()),
                        ("webwx_data_ticket", ticket),
                    ],
                )
            }
        };
        // The video's `Range: bytes=0-` (PROTOCOL.md §9.5) is in the request table.
        let builder = self.http.get(url).query(&query);
        let builder = self.stamp(builder, endpoint, &super::stamp::origin(&c.hosts.api));
        let resp = builder.send().await.map_err(|source| WxError::Http {
            endpoint,
            host: source.url().map(host_of).unwrap_or_default(),
            source: source.without_url(),
        })?;
        let status = resp.status().as_u16();
        match status {
            200 | 206 => {}
            404 | 410 => return Err(DownloadError::Gone { endpoint, status }),
            _ => return Err(WxError::Status { endpoint, status }.into()),
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
        };
        if req.endpoint == MediaEndpoint::Video && status == 206 && header(CONTENT_RANGE).is_none()
        {
            return Err(WxError::Garbage {
                endpoint,
                detail: "a 206 answer without Content-Range".into(),
            }
            .into());
        }
        let len = header(CONTENT_RANGE)
            .and_then(range_total)
            .or_else(|| header(CONTENT_LENGTH).and_then(|v| v.parse().ok()));
        if let Some(size) = len.filter(|&n| n > limit) {
            return Err(DownloadError::TooLarge {
                endpoint,
                size,
                limit,
            });
        }
        if len == Some(0) {
            return Err(DownloadError::Gone { endpoint, status });
        }
        Ok(Download {
            endpoint,
            resp,
            len,
            read: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_comes_from_the_content_range() {
        assert_eq!(range_total("bytes 0-99/100"), Some(100));
        assert_eq!(range_total("bytes 0-99/*"), None);
        assert_eq!(range_total("garbage"), None);
    }
}
