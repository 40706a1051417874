//! Sending a file, the pure part (PROTOCOL.md §9.2–§9.3): how the official client cuts an
//! upload into chunks and fills `webwxuploadmedia`'s multipart form and its
//! `uploadmediarequest`, the `webwxcheckupload` of large files, the `<appmsg>` XML of a file
//! message, and the answers. The HTTP exchange is `client/upload.rs`.
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, UtcOffset};

use super::{string_or_number, BaseRequest, BaseResponse};

/// The size of every chunk but the last (the official client's 512 KiB).
pub const CHUNK_BYTES: u64 = 524_288;
/// Files larger than this are asked about with `webwxcheckupload` first, and are uploaded with
/// its AESKey and Signature (PROTOCOL.md §9.2: "over 25 MiB").
pub const CHECKUPLOAD_ABOVE: u64 = 25 * 1024 * 1024;
/// The web client's appid in a file's `<appmsg>`; empty in desktop mode (PROTOCOL.md §9.3).
pub const WEB_APPID: &str = "wxeb7ec651dd0aefa9";

/// How many chunks a file of `size` bytes is posted in: `None` up to 512 KiB, where the form
/// carries no `chunks`/`chunk` at all, else the count of 524288-byte pieces.
pub fn chunk_count(size: u64) -> Option<u64> {
    (size > CHUNK_BYTES).then(|| size.div_ceil(CHUNK_BYTES))
}

/// The form's `mediatype`: `pic` for bmp/png/jpeg, `video` for mp4, else `doc` (gif included,
/// as itchat and puppet-wechat send it), decided by the type the bytes show.
pub fn upload_media_type(mime: &str) -> &'static str {
    match mime {
        "image/bmp" | "image/png" | "image/jpeg" => "pic",
        "video/mp4" => "video",
        _ => "doc",
    }
}

/// The form's `lastModifiedDate` as a browser in China writes a JS `Date`:
/// `Tue Nov 06 2018 08:45:19 GMT+0800 (中国标准时间)`.
pub fn js_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::from_hms(8, 0, 0).expect("a valid offset"));
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {} {:02}:{:02}:{:02} GMT+0800 (中国标准时间)",
        DAYS[t.weekday().number_days_from_monday() as usize],
        MONTHS[usize::from(u8::from(t.month())) - 1],
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `uploadmediarequest` JSON, its members in the official client's order. Every chunk
/// carries the same one (StartPos 0, DataLen = the whole size): only `chunk` moves.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadMediaRequest {
    /// Always 2.
    pub upload_type: u32,
    /// The session.
    pub base_request: BaseRequest,
    /// The upload's id: the ms time it started.
    pub client_media_id: u64,
    /// The whole file's size.
    pub total_len: u64,
    /// Always 0.
    pub start_pos: u64,
    /// The whole file's size again.
    pub data_len: u64,
    /// Always 4 (attachment).
    pub media_type: u32,
    /// Self.
    pub from_user_name: String,
    /// The recipient.
    pub to_user_name: String,
    /// md5 of the whole file, lowercase hex.
    pub file_md5: String,
    /// From `webwxcheckupload`, only for files over 25 MiB.
    #[serde(rename = "AESKey", skip_serializing_if = "Option::is_none")]
    pub aes_key: Option<String>,
    /// From `webwxcheckupload`, only for files over 25 MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A `webwxuploadmedia` answer; the last chunk's carries the MediaId.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UploadResponse {
    /// Ret.
    pub base_response: BaseResponse,
    /// `@crypt_…`; empty on failure (and perhaps on intermediate chunks).
    pub media_id: String,
    /// Where the server is.
    #[serde(deserialize_with = "string_or_number")]
    pub start_pos: String,
}

/// A `webwxcheckupload` answer (PROTOCOL.md §9.2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckUploadResponse {
    /// Ret.
    pub base_response: BaseResponse,
    /// Non-empty when WeChat already has the file: no upload then.
    pub media_id: String,
    /// For the upload.
    #[serde(rename = "AESKey")]
    pub aes_key: String,
    /// For the upload and the send.
    pub signature: String,
}

/// Escapes text for an XML element.
fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The extension WeChat shows a file with: what follows the name's last dot, without it.
pub fn file_ext(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => "",
    }
}

/// A file message's `<appmsg>` as the web client builds it (PROTOCOL.md §9.3); the appid is
/// empty in desktop mode.
pub fn file_appmsg(title: &str, total_len: u64, media_id: &str, desktop: bool) -> String {
    let appid = if desktop { "" } else { WEB_APPID };
    format!(
        "<appmsg appid='{appid}' sdkver=''><title>{title}</title><des></des><action></action>\
         <type>6</type><content></content><url></url><lowurl></lowurl><appattach>\
         <totallen>{total_len}</totallen><attachid>{media_id}</attachid><fileext>{ext}</fileext>\
         </appattach><extinfo></extinfo></appmsg>",
        title = xml_text(title),
        media_id = xml_text(media_id),
        ext = xml_text(file_ext(title)),
    )
}

/// A multipart/form-data body as a browser writes it: the text fields in order, then the
/// file part named `filename`. A `"` in the file name is written `%22` as browsers do (the
/// name has no control characters: `event::check_name`).
pub fn multipart_body(
    boundary: &str,
    fields: &[(&str, String)],
    file_name: &str,
    mime: &str,
    bytes: &[u8],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 256 * (fields.len() + 1));
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; \
             filename=\"{}\"\r\nContent-Type: {mime}\r\n\r\n",
            file_name.replace('"', "%22")
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// A boundary like Chrome's: `----WebKitFormBoundary` and 16 random letters and digits.
pub fn new_boundary() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut b = String::from("----WebKitFormBoundary");
    for _ in 0..16 {
        b.push(char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn files_over_512_kib_go_in_524288_byte_chunks() {
        assert_eq!(chunk_count(0), None);
        assert_eq!(
            chunk_count(524_288),
            None,
            "exactly 512 KiB is one plain part"
        );
        assert_eq!(chunk_count(524_289), Some(2));
        assert_eq!(chunk_count(30_000_000), Some(58));
    }

    #[test]
    fn the_media_type_follows_the_bytes() {
        assert_eq!(upload_media_type("image/jpeg"), "pic");
        assert_eq!(upload_media_type("image/png"), "pic");
        assert_eq!(upload_media_type("image/gif"), "doc");
        assert_eq!(upload_media_type("video/mp4"), "video");
        assert_eq!(upload_media_type("application/pdf"), "doc");
    }

    #[test]
    fn last_modified_is_a_js_date_in_china_time() {
        assert_eq!(
            js_date(datetime!(2018-11-06 00:45:19 UTC)),
            "Tue Nov 06 2018 08:45:19 GMT+0800 (中国标准时间)"
        );
    }

    #[test]
    fn uploadmediarequest_members_are_in_the_official_order() {
        let req = UploadMediaRequest {
            upload_type: 2,
            base_request: BaseRequest {
                uin: 1,
                sid: "s".into(),
                skey: "k".into(),
                device_id: "e1".into(),
            },
            client_media_id: 1_700_000_000_000,
            total_len: 10,
            start_pos: 0,
            data_len: 10,
            media_type: 4,
            from_user_name: "@me".into(),
            to_user_name: "@you".into(),
            file_md5: "m".into(),
            aes_key: None,
            signature: None,
        };
        let json = serde_json::to_string(&req).unwrap();
        let keys: Vec<&str> = [
            "UploadType",
            "BaseRequest",
            "ClientMediaId",
            "TotalLen",
            "StartPos",
            "DataLen",
            "MediaType",
            "FromUserName",
            "ToUserName",
            "FileMd5",
        ]
        .into();
        let at: Vec<usize> = keys
            .iter()
            .map(|k| json.find(&format!("\"{k}\"")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(
            !json.contains("AESKey") && !json.contains("Signature"),
            "{json}"
        );
        let large = UploadMediaRequest {
            aes_key: Some("a".into()),
            signature: Some("s".into()),
            ..req
        };
        let json = serde_json::to_string(&large).unwrap();
        assert!(
            json.ends_with(r#""FileMd5":"m","AESKey":"a","Signature":"s"}"#),
            "{json}"
        );
    }

    #[test]
    fn a_file_appmsg_is_the_web_clients_xml_with_the_title_escaped() {
        assert_eq!(
            file_appmsg("a.pdf", 48213, "@crypt_9f", false),
            "<appmsg appid='wxeb7ec651dd0aefa9' sdkver=''><title>a.pdf</title><des></des>\
             <action></action><type>6</type><content></content><url></url><lowurl></lowurl>\
             <appattach><totallen>48213</totallen><attachid>@crypt_9f</attachid><fileext>pdf\
             </fileext></appattach><extinfo></extinfo></appmsg>"
        );
        let desktop = file_appmsg("Q&A <1>.tar.gz", 1, "@m", true);
        assert!(
            desktop.starts_with("<appmsg appid='' sdkver=''>"),
            "{desktop}"
        );
        assert!(
            desktop.contains("<title>Q&amp;A &lt;1&gt;.tar.gz</title>"),
            "{desktop}"
        );
        assert!(desktop.contains("<fileext>gz</fileext>"), "{desktop}");
        assert!(roxmltree::Document::parse(&desktop).is_ok());
        assert_eq!(file_ext("README"), "");
        assert_eq!(file_ext(".profile"), "");
    }

    #[test]
    fn the_multipart_body_keeps_the_field_order_and_the_bytes() {
        let body = multipart_body(
            "----B",
            &[("id", "WU_FILE_0".into()), ("name", "a\"b.jpg".into())],
            "a\"b.jpg",
            "image/jpeg",
            b"\xff\xd8bytes",
        );
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(
            "------B\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nWU_FILE_0\r\n------B\r\n"
        ));
        assert!(text.contains(
            "name=\"filename\"; filename=\"a%22b.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        ));
        assert!(body.ends_with(b"\xff\xd8bytes\r\n------B--\r\n"));
        let b = new_boundary();
        assert_eq!(b.len(), "----WebKitFormBoundary".len() + 16);
    }

    #[test]
    fn upload_answers_parse_with_or_without_a_media_id() {
        let r: UploadResponse = serde_json::from_str(
            "{\n\"BaseResponse\": {\n\"Ret\": 0,\n\"ErrMsg\": \"\"\n}\n,\n\"MediaId\": \"@crypt_1\",\n\"StartPos\": 48213,\n\"CDNThumbImgHeight\": 100,\n\"CDNThumbImgWidth\": 66,\n\"EncryFileName\": \"a%2Ejpg\"\n}",
        )
        .unwrap();
        assert_eq!(r.media_id, "@crypt_1");
        assert_eq!(r.start_pos, "48213");
        let r: CheckUploadResponse = serde_json::from_str(
            r#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MediaId":"","AESKey":"k","Signature":"s","EncryFileName":"x"}"#,
        )
        .unwrap();
        assert_eq!(
            (
                r.media_id.as_str(),
                r.aes_key.as_str(),
                r.signature.as_str()
            ),
            ("", "k", "s")
        );
    }
}
