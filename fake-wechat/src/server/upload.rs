//! Uploads (PROTOCOL.md §9.2): `webwxuploadmedia` on the file host, accepted only as the
//! official client sends it, and `webwxcheckupload` on the API host, which files over
//! 25 MiB need first.
//!
//! The rules, each of which a broken upload fails with a refusal (Ret 1, "parameter error";
//! the real Ret for each case is [U]) and a recorded [`Violation`](crate::Violation):
//! - `?f=json`; the session cookies; `multipart/form-data` with exactly the official fields
//!   in the official order, `chunks`/`chunk` present exactly when the file is over 512 KiB;
//! - `id` `WU_FILE_<n>`; `size` = TotalLen = DataLen; `mediatype` `pic` only for an image
//!   name, `video` only for mp4, else `doc`;
//! - `uploadmediarequest`: UploadType 2, a valid BaseRequest, ClientMediaId, StartPos 0,
//!   MediaType 4, FromUserName = the account, ToUserName a contact (a UserName of an earlier
//!   login is Ret 1201, see `renumber`), FileMd5 = the md5 of the
//!   whole file (checked when the last chunk arrives); over 25 MiB, the AESKey and Signature
//!   `webwxcheckupload` gave for that FileMd5; every chunk repeats the first one's request
//!   and fields (BaseRequest aside: the official client makes a DeviceID per request);
//! - `webwx_data_ticket` equal to the cookie, `pass_ticket` the session's (or itchat's
//!   `undefined`);
//! - chunks of exactly 524,288 bytes (the last one the rest), posted in order from 0.
//!
//! The last chunk's answer carries the MediaId and StartPos = the size. The others answer
//! MediaId "", StartPos 0, no thumbnail size and the EncryFileName: openwechat reads only
//! their BaseResponse, and this is the one form whose length in the servers' layout is the
//! `Content-Length` (162) of a captured intermediate answer for `IMG_1002.JPG`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::Response;
use md5::{Digest, Md5};
use serde_json::{json, Value};
use sha2::Sha256;

use super::api::id_text;
use super::{base_response, cookies, json_call, json_text, multipart, order, refused, Ctx, Params};
use crate::ids;
use crate::media::outbox::{Grant, Pending};
use crate::record::Upload;
use crate::state::{Refusal, State};

/// The official chunk size (§9.2).
pub(crate) const CHUNK: u64 = 524_288;
/// Files over this need `webwxcheckupload` and its Signature (§9.2).
pub(crate) const SIGNED_ABOVE: u64 = 25 * 1024 * 1024;

const UPLOAD: &str = "webwxuploadmedia";
const CHECK: &str = "webwxcheckupload";

const HEAD: [&str; 5] = ["id", "name", "type", "lastModifiedDate", "size"];
const TAIL: [&str; 5] = [
    "mediatype",
    "uploadmediarequest",
    "webwx_data_ticket",
    "pass_ticket",
    "filename",
];

/// The form fields every chunk must repeat.
const REPEATED: [&str; 7] = [
    "id",
    "name",
    "type",
    "lastModifiedDate",
    "size",
    "chunks",
    "mediatype",
];

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn bad(why: impl Into<String>) -> Refusal {
    Refusal::new(1, format!("parameter error: {}", why.into()))
}

/// Records a refusal as a violation, unless the session ended under the client (a logout
/// or an expiry is not the client's fault).
pub(crate) fn note(st: &mut State, endpoint: &str, r: &Refusal) {
    if st.session.as_ref().is_some_and(|s| s.ended.is_none()) {
        st.violation(endpoint, r.why.clone());
    }
}

/// What a chunk achieved.
enum Step {
    More {
        name: String,
    },
    Done {
        media_id: String,
        size: u64,
        pic: bool,
        name: String,
    },
}

/// `webwxuploadmedia?f=json` (§9.2).
pub(crate) async fn upload_media(
    AxState(shared): Ctx,
    headers: HeaderMap,
    Query(q): Params,
    body: Bytes,
) -> Response {
    let layout = shared.opts.layout();
    let outcome = shared.update(|st| {
        let r = accept_chunk(st, &headers, &q, &body);
        if let Err(refusal) = &r {
            note(st, UPLOAD, refusal);
        }
        r
    });
    let answer = |media_id: &str, start: u64, thumb: (u32, u32), encry: &str| {
        json!({
            "BaseResponse": base_response(0, ""),
            "MediaId": media_id,
            "StartPos": start,
            "CDNThumbImgHeight": thumb.0,
            "CDNThumbImgWidth": thumb.1,
            "EncryFileName": encry,
        })
    };
    match outcome {
        Ok(Step::More { name }) => {
            let encry = ids::encry_file_name(&name);
            json_text(layout, &order::UPLOAD, &answer("", 0, (0, 0), &encry))
        }
        Ok(Step::Done {
            media_id,
            size,
            pic,
            name,
        }) => {
            // The captured answer for a JPEG: a 100×66 thumbnail [U: real values follow
            // the picture].
            let thumb = if pic { (100, 66) } else { (0, 0) };
            let encry = ids::encry_file_name(&name);
            json_text(
                layout,
                &order::UPLOAD,
                &answer(&media_id, size, thumb, &encry),
            )
        }
        Err(r) => refused(
            layout,
            &order::UPLOAD,
            &r,
            json!({"MediaId": "", "StartPos": 0, "CDNThumbImgHeight": 0,
                "CDNThumbImgWidth": 0, "EncryFileName": ""}),
        ),
    }
}

fn accept_chunk(
    st: &mut State,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Result<Step, Refusal> {
    if q.get("f").map(String::as_str) != Some("json") {
        return Err(bad("the query lacks f=json"));
    }
    let jar = cookies(headers);
    st.check_cookies(&jar)?;
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multipart::boundary(content_type)
        .ok_or_else(|| bad("the body is not multipart/form-data"))?;
    let parts = multipart::parse(body, &boundary).map_err(bad)?;
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    let chunked = names.get(5) == Some(&"chunks");
    let mut expected: Vec<&str> = HEAD.to_vec();
    if chunked {
        expected.extend(["chunks", "chunk"]);
    }
    expected.extend(TAIL);
    if names != expected {
        return Err(bad(format!(
            "form fields {names:?} are not the official order {expected:?}"
        )));
    }
    let text = |name: &str| -> String {
        parts
            .iter()
            .find(|p| p.name == name)
            .map(|p| String::from_utf8_lossy(p.data).into_owned())
            .unwrap_or_default()
    };
    let file = &parts[parts.len() - 1];
    if file.filename.is_none() {
        return Err(bad("the filename part has no filename"));
    }
    let id = text("id");
    if !id
        .strip_prefix("WU_FILE_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad(format!("id {id:?} is not WU_FILE_<n>")));
    }
    let name = text("name");
    if name.is_empty() || text("lastModifiedDate").is_empty() {
        return Err(bad("name and lastModifiedDate must not be empty"));
    }
    let size: u64 = text("size")
        .parse()
        .map_err(|_| bad("size is not a number"))?;
    if chunked != (size > CHUNK) {
        return Err(bad(format!(
            "chunks/chunk are sent exactly when size is over {CHUNK} (size {size})"
        )));
    }
    let req: Value = serde_json::from_str(&text("uploadmediarequest"))
        .map_err(|e| bad(format!("uploadmediarequest is not JSON: {e}")))?;
    let (me, sid, data_ticket) = {
        let session = st.check_base_request(req.get("BaseRequest"))?;
        (
            st.book.me.user_name.clone(),
            session.sid.clone(),
            session.data_ticket.clone(),
        )
    };
    let num = |k: &str| req[k].as_u64();
    if num("UploadType") != Some(2) {
        return Err(bad("UploadType must be 2"));
    }
    if num("MediaType") != Some(4) {
        return Err(bad("MediaType must be 4"));
    }
    if num("StartPos") != Some(0) {
        return Err(bad("StartPos must be 0 in every chunk"));
    }
    if num("TotalLen") != Some(size) || num("DataLen") != Some(size) {
        return Err(bad("TotalLen and DataLen must equal size"));
    }
    if req["FromUserName"].as_str() != Some(me.as_str()) {
        return Err(bad("FromUserName must be the account's UserName"));
    }
    let to = req["ToUserName"].as_str().unwrap_or("").to_owned();
    st.check_recipient(&to, "ToUserName")?;
    let md5 = req["FileMd5"].as_str().unwrap_or("").to_ascii_lowercase();
    if !is_md5_hex(&md5) {
        return Err(bad("FileMd5 must be 32 hex digits"));
    }
    let client_media_id =
        id_text(&req["ClientMediaId"]).ok_or_else(|| bad("ClientMediaId must be digits"))?;
    if text("webwx_data_ticket") != jar.get("webwx_data_ticket").cloned().unwrap_or_default() {
        return Err(bad("webwx_data_ticket does not match the cookie"));
    }
    if text("webwx_data_ticket") != data_ticket {
        return Err(bad("webwx_data_ticket is not this session's"));
    }
    let pass = text("pass_ticket");
    if pass != "undefined" {
        st.check_pass_ticket(&HashMap::from([("pass_ticket".to_owned(), pass)]))?;
    }
    let media_type = text("mediatype");
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let fits = match media_type.as_str() {
        "pic" => ["bmp", "png", "jpg", "jpeg", "gif"].contains(&ext.as_str()),
        "video" => ext == "mp4",
        "doc" => true,
        _ => false,
    };
    if !fits {
        return Err(bad(format!(
            "mediatype {media_type:?} does not fit {name:?}"
        )));
    }
    let signed = size > SIGNED_ABOVE;
    if signed {
        let Some(grant) = st.outbox.grants.get(&md5).filter(|g| g.size == size) else {
            return Err(bad("a file over 25 MiB needs webwxcheckupload first"));
        };
        if req["AESKey"].as_str() != Some(grant.aes_key.as_str())
            || req["Signature"].as_str() != Some(grant.signature.as_str())
        {
            return Err(bad("AESKey and Signature must be webwxcheckupload's"));
        }
    }
    let (chunks, chunk) = if chunked {
        let parse = |k: &str| {
            text(k)
                .parse::<usize>()
                .map_err(|_| bad(format!("{k} is not a number")))
        };
        (parse("chunks")?, parse("chunk")?)
    } else {
        (1, 0)
    };
    let due = size.div_ceil(CHUNK) as usize;
    if chunks != due || chunk >= chunks {
        return Err(bad(format!(
            "chunks {chunks}, chunk {chunk}: a {size}-byte file is {due} chunks"
        )));
    }
    let want = if chunk + 1 < chunks {
        CHUNK
    } else {
        size - CHUNK * (chunks as u64 - 1)
    };
    if file.data.len() as u64 != want {
        return Err(bad(format!(
            "chunk {chunk} holds {} bytes, not {want}",
            file.data.len()
        )));
    }
    let mut request = req.clone();
    if let Value::Object(m) = &mut request {
        m.remove("BaseRequest");
    }
    let fields: Vec<(String, String)> = REPEATED
        .iter()
        .map(|k| ((*k).to_owned(), text(k)))
        .collect();
    if chunk == 0 {
        st.outbox.pending.insert(
            client_media_id.clone(),
            Pending {
                request,
                fields,
                chunks,
                next: 0,
                bytes: Vec::with_capacity(size as usize),
            },
        );
    } else {
        let Some(p) = st.outbox.pending.get(&client_media_id) else {
            return Err(bad(format!(
                "chunk {chunk} of an upload that sent no chunk 0"
            )));
        };
        if p.next != chunk {
            return Err(bad(format!(
                "chunk {chunk} came while chunk {} was due",
                p.next
            )));
        }
        if p.request != request || p.fields != fields || p.chunks != chunks {
            return Err(bad(
                "a chunk changed the uploadmediarequest or the form fields",
            ));
        }
    }
    let Some(p) = st.outbox.pending.get_mut(&client_media_id) else {
        return Err(bad("upload lost"));
    };
    p.bytes.extend_from_slice(file.data);
    p.next += 1;
    if p.next < chunks {
        return Ok(Step::More { name });
    }
    let Some(p) = st.outbox.pending.remove(&client_media_id) else {
        return Err(bad("upload lost"));
    };
    if hex(&Md5::digest(&p.bytes)) != md5 {
        return Err(bad("FileMd5 is not the md5 of the bytes received"));
    }
    let media_id = ids::media_id();
    let upload = Upload {
        media_id: media_id.clone(),
        name: name.clone(),
        size,
        md5,
        sha256: hex(&Sha256::digest(&p.bytes)),
        chunks,
        media_type: media_type.clone(),
        to,
        signed,
    };
    let index = st.outbox.uploads.len();
    st.outbox.uploads.push(upload);
    st.outbox
        .by_media_id
        .insert(media_id.clone(), (index, sid, Arc::new(p.bytes)));
    Ok(Step::Done {
        media_id,
        size,
        pic: media_type == "pic",
        name,
    })
}

/// `webwxcheckupload` (§9.2): FileType 7 required; answers MediaId "" with an AESKey and
/// Signature that the upload and the file send of that FileMd5 must then carry.
pub(crate) async fn check_upload(AxState(shared): Ctx, Query(q): Params, body: Bytes) -> Response {
    let layout = shared.opts.layout();
    let outcome = shared.update(|st| {
        let r = grant(st, &q, &body);
        if let Err(refusal) = &r {
            note(st, CHECK, refusal);
        }
        r
    });
    match outcome {
        Ok(v) => json_text(layout, &order::CHECK_UPLOAD, &v),
        Err(r) => refused(
            layout,
            &order::CHECK_UPLOAD,
            &r,
            json!({"MediaId": "", "AESKey": "", "Signature": "", "EncryFileName": ""}),
        ),
    }
}

fn grant(st: &mut State, q: &HashMap<String, String>, body: &Bytes) -> Result<Value, Refusal> {
    let v = json_call(st, q, body)?;
    if v["FileType"].as_u64() != Some(7) {
        return Err(bad("FileType must be 7"));
    }
    let md5 = v["FileMd5"].as_str().unwrap_or("").to_ascii_lowercase();
    if !is_md5_hex(&md5) {
        return Err(bad("FileMd5 must be 32 hex digits"));
    }
    let Some(size) = v["FileSize"].as_u64().filter(|&s| s > 0) else {
        return Err(bad("FileSize must be a positive number"));
    };
    let name = v["FileName"].as_str().unwrap_or("");
    if name.is_empty() {
        return Err(bad("FileName must not be empty"));
    }
    if v["FromUserName"].as_str() != Some(st.book.me.user_name.as_str()) {
        return Err(bad("FromUserName must be the account's UserName"));
    }
    st.check_recipient(v["ToUserName"].as_str().unwrap_or(""), "ToUserName")?;
    // Key and signature shapes are [U]: hex strings.
    let g = Grant {
        size,
        aes_key: ids::hex(32),
        signature: ids::hex(96),
    };
    let answer = json!({
        "BaseResponse": base_response(0, ""),
        "MediaId": "",
        "AESKey": g.aes_key,
        "Signature": g.signature,
        "EncryFileName": ids::encry_file_name(name),
    });
    st.outbox.grants.insert(md5, g);
    Ok(answer)
}
