//! Uploads and media sends (§9.2, §9.3): a conforming client's upload and sends succeed;
//! an upload or send that breaks one of the official client's rules is refused and
//! recorded as a violation.

use md5::{Digest, Md5};
use serde_json::{json, Value};
use wxbridge_fake::FakeWeChat;

use crate::support::{logged_in, logged_in_as, start, Client};

const CHUNK: usize = 524_288;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deterministic bytes.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// One multipart field: name, value, file name.
type Field = (String, Vec<u8>, Option<String>);

/// A change that breaks a chunk's fields.
type Edit = Box<dyn Fn(&mut Vec<Field>)>;

/// A file to upload the way the official client does.
struct Up {
    name: String,
    mime: String,
    mediatype: String,
    data: Vec<u8>,
    to: String,
    client_media_id: u64,
    /// FileMd5 (of `data`, unless a test says otherwise).
    md5: String,
    /// checkupload's AESKey and Signature, for files over 25 MiB.
    signed: Option<(String, String)>,
}

impl Up {
    fn new(name: &str, mediatype: &str, data: Vec<u8>, to: &str) -> Up {
        Up {
            name: name.into(),
            mime: "application/octet-stream".into(),
            mediatype: mediatype.into(),
            to: to.into(),
            client_media_id: 1_700_000_000_123,
            md5: hex(&Md5::digest(&data)),
            data,
            signed: None,
        }
    }

    fn chunks(&self) -> usize {
        self.data.len().div_ceil(CHUNK).max(1)
    }

    fn md5(&self) -> String {
        self.md5.clone()
    }

    /// The fields of chunk `i`, in the official order.
    fn fields(&self, c: &Client, fake: &FakeWeChat, i: usize) -> Vec<Field> {
        let size = self.data.len();
        let mut req = json!({
            "UploadType": 2, "BaseRequest": c.base_request(),
            "ClientMediaId": self.client_media_id, "TotalLen": size, "StartPos": 0,
            "DataLen": size, "MediaType": 4, "FromUserName": c.me, "ToUserName": self.to,
            "FileMd5": self.md5(),
        });
        if let Some((aes, sig)) = &self.signed {
            req["AESKey"] = json!(aes);
            req["Signature"] = json!(sig);
        }
        let f = |n: &str, v: String| (n.to_owned(), v.into_bytes(), None);
        let mut out = vec![
            f("id", "WU_FILE_0".into()),
            f("name", self.name.clone()),
            f("type", self.mime.clone()),
            f(
                "lastModifiedDate",
                "Tue Nov 06 2018 08:45:19 GMT+0800 (中国标准时间)".into(),
            ),
            f("size", size.to_string()),
        ];
        let piece = if size > CHUNK {
            out.push(f("chunks", self.chunks().to_string()));
            out.push(f("chunk", i.to_string()));
            &self.data[i * CHUNK..((i + 1) * CHUNK).min(size)]
        } else {
            &self.data[..]
        };
        out.push(f("mediatype", self.mediatype.clone()));
        out.push(f("uploadmediarequest", req.to_string()));
        out.push(f("webwx_data_ticket", ticket(fake)));
        out.push(f("pass_ticket", c.pass_ticket.clone()));
        out.push(("filename".into(), piece.to_vec(), Some(self.name.clone())));
        out
    }
}

fn ticket(fake: &FakeWeChat) -> String {
    fake.requests("webwxinit")[0]
        .cookie("webwx_data_ticket")
        .unwrap()
}

async fn post_fields(c: &Client, fields: &[Field]) -> Value {
    let boundary = "----WebKitFormBoundaryCFAuSFyYgivpBuGp";
    let mut body = Vec::new();
    for (name, value, file) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").bytes(),
        );
        if let Some(file) = file {
            body.extend(
                format!("; filename=\"{file}\"\r\nContent-Type: application/octet-stream").bytes(),
            );
        }
        body.extend(b"\r\n\r\n");
        body.extend(value);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    let text = c
        .http
        .post(c.cgi("webwxuploadmedia"))
        .query(&[("f", "json")])
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Uploads every chunk in order; the last answer.
async fn upload(c: &Client, fake: &FakeWeChat, up: &Up) -> Value {
    let mut last = Value::Null;
    for i in 0..up.chunks() {
        last = post_fields(c, &up.fields(c, fake, i)).await;
        assert_eq!(last["BaseResponse"]["Ret"], 0, "chunk {i}: {last}");
        if i + 1 < up.chunks() {
            assert_eq!(
                (last["MediaId"].as_str(), last["StartPos"].as_u64()),
                (Some(""), Some(0))
            );
        }
    }
    last
}

async fn send(c: &Client, endpoint: &str, query: &[(&str, &str)], msg: Value) -> Value {
    let mut msg = msg;
    msg["FromUserName"] = json!(c.me);
    msg["LocalID"] = json!("17000000001230456");
    msg["ClientMsgId"] = json!("17000000001230456");
    let body = json!({"BaseRequest": c.base_request(), "Msg": msg, "Scene": 0});
    let text = c
        .http
        .post(c.cgi(endpoint))
        .query(query)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn appmsg(title: &str, size: usize, media_id: &str, ext: &str) -> String {
    format!("<appmsg appid='wxeb7ec651dd0aefa9' sdkver=''><title>{title}</title><des></des><action></action><type>6</type><content></content><url></url><lowurl></lowurl><appattach><totallen>{size}</totallen><attachid>{media_id}</attachid><fileext>{ext}</fileext></appattach><extinfo></extinfo></appmsg>")
}

const ASYNC: [(&str, &str); 2] = [("fun", "async"), ("f", "json")];

#[tokio::test]
async fn a_conforming_chunked_upload_and_file_send_succeed_and_echo_the_bytes() {
    let fake = start().await;
    let mut c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    fake.echo_sent(true);
    let up = Up::new("report.pdf", "doc", bytes(2 * CHUNK + 1000, 7), &friend);
    let answer = upload(&c, &fake, &up).await;
    let media_id = answer["MediaId"].as_str().unwrap().to_owned();
    assert!(media_id.starts_with("@crypt_"), "{answer}");
    assert_eq!(answer["StartPos"], up.data.len());
    assert_eq!(answer["EncryFileName"], "report%2Epdf");
    let uploads = fake.uploads();
    assert_eq!(uploads.len(), 1);
    let u = &uploads[0];
    assert_eq!(
        (u.size, u.chunks, u.media_type.as_str()),
        (up.data.len() as u64, 3, "doc")
    );
    assert_eq!(u.md5, up.md5());
    assert_eq!(u.to, friend);
    assert_eq!(fake.upload_bytes(&media_id).unwrap(), up.data);

    let xml = appmsg("report.pdf", up.data.len(), &media_id, "pdf");
    let v = send(
        &c,
        "webwxsendappmsg",
        &ASYNC,
        json!({"Type": 6, "Content": xml, "ToUserName": friend}),
    )
    .await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let sent = fake.sent_media();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].msg_type, sent[0].media_id.as_str()),
        (6, media_id.as_str())
    );
    assert_eq!(sent[0].msg_id, v["MsgID"].as_str().unwrap());
    assert_eq!(sent[0].upload.as_ref().unwrap().sha256, u.sha256);
    assert!(fake.sent().is_empty(), "media sends are not text sends");

    // The phone's copy arrives as a file message whose download is the uploaded bytes.
    let sync = c.sync().await;
    let echo = &sync["AddMsgList"][0];
    assert_eq!(
        (echo["MsgType"].as_u64(), echo["AppMsgType"].as_u64()),
        (Some(49), Some(6))
    );
    assert_eq!(echo["FromUserName"], c.me.as_str());
    assert_eq!(
        fake.media_bytes(echo["MsgId"].as_str().unwrap()).unwrap(),
        up.data
    );
    assert_eq!(fake.violations(), vec![]);
}

#[tokio::test]
async fn image_video_and_emoticon_sends_need_an_uploaded_media_id() {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    let mut image = Up::new("cam.jpg", "pic", bytes(40_000, 1), &friend);
    image.mime = "image/jpeg".into();
    let image_id = upload(&c, &fake, &image).await["MediaId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut video = Up::new("clip.mp4", "video", bytes(CHUNK + 1, 2), &friend);
    video.client_media_id += 1;
    let video_id = upload(&c, &fake, &video).await["MediaId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fake.uploads()[0].chunks, 1);

    let img = |id: &str| json!({"Type": 3, "MediaId": id, "Content": "", "ToUserName": friend});
    let v = send(&c, "webwxsendmsgimg", &ASYNC, img(&image_id)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let v = send(
        &c,
        "webwxsendvideomsg",
        &ASYNC,
        json!({"Type": 43, "MediaId": video_id, "Content": "", "ToUserName": friend}),
    )
    .await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let sys = [("fun", "sys")];
    let v = send(
        &c,
        "webwxsendemoticon",
        &sys,
        json!({"Type": 47, "EmojiFlag": 2, "MediaId": image_id, "ToUserName": friend}),
    )
    .await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let v = send(&c, "webwxsendemoticon", &sys, json!({"Type": 47, "EmojiFlag": 2, "EMoticonMd5": "0123456789abcdef0123456789abcdef", "ToUserName": friend})).await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let types: Vec<u32> = fake.sent_media().iter().map(|s| s.msg_type).collect();
    assert_eq!(types, vec![3, 43, 47, 47]);
    assert_eq!(fake.violations(), vec![]);

    // Unknown MediaId, wrong Type, no fun=async: refused and recorded.
    let v = send(&c, "webwxsendmsgimg", &ASYNC, img("@crypt_0000_1111")).await;
    assert_eq!(v["BaseResponse"]["Ret"], 1);
    assert_eq!(v["MsgID"], "");
    let mut wrong = img(&image_id);
    wrong["Type"] = json!(1);
    assert_eq!(
        send(&c, "webwxsendmsgimg", &ASYNC, wrong).await["BaseResponse"]["Ret"],
        1
    );
    assert_eq!(
        send(&c, "webwxsendmsgimg", &[], img(&image_id)).await["BaseResponse"]["Ret"],
        1
    );
    let v = fake.violations();
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(
        v[0].rule.contains("was not uploaded in this session"),
        "{v:?}"
    );
    assert_eq!(fake.sent_media().len(), 4);

    // fail_sends counts media sends too, without a violation.
    fake.fail_sends(1205, 0);
    assert_eq!(
        send(&c, "webwxsendmsgimg", &ASYNC, img(&image_id)).await["BaseResponse"]["Ret"],
        1205
    );
    assert_eq!(fake.violations().len(), 3);
}

/// Uploads `up` with chunk `i`'s fields changed by `edit`; the refusal's ErrMsg and the
/// violations recorded.
async fn broken(
    fake: &FakeWeChat,
    c: &Client,
    up: &Up,
    i: usize,
    edit: impl Fn(&mut Vec<Field>),
) -> String {
    for j in 0..i {
        let ok = post_fields(c, &up.fields(c, fake, j)).await;
        assert_eq!(ok["BaseResponse"]["Ret"], 0, "{ok}");
    }
    let mut fields = up.fields(c, fake, i);
    edit(&mut fields);
    let v = post_fields(c, &fields).await;
    assert_eq!(v["BaseResponse"]["Ret"], 1, "{v}");
    assert_eq!(v["MediaId"], "");
    let violations = fake.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].endpoint, "webwxuploadmedia");
    assert!(fake.uploads().is_empty());
    violations[0].rule.clone()
}

async fn session() -> (FakeWeChat, Client, String) {
    let fake = start().await;
    let c = logged_in(&fake).await;
    let friend = fake.add_contact("Ann", "");
    (fake, c, friend)
}

#[tokio::test]
async fn a_chunk_of_the_wrong_size_is_refused() {
    let (fake, c, to) = session().await;
    let up = Up::new("a.bin", "doc", bytes(2 * CHUNK + 5, 3), &to);
    let rule = broken(&fake, &c, &up, 0, |f| {
        f.last_mut().unwrap().1.truncate(CHUNK - 1)
    })
    .await;
    assert!(rule.contains("holds 524287 bytes"), "{rule}");
}

#[tokio::test]
async fn a_chunk_out_of_order_is_refused() {
    let (fake, c, to) = session().await;
    let up = Up::new("a.bin", "doc", bytes(3 * CHUNK, 3), &to);
    let skip = up.fields(&c, &fake, 2);
    let rule = broken(&fake, &c, &up, 1, |f| *f = skip.clone()).await;
    assert!(
        rule.contains("chunk 2 came while chunk 1 was due"),
        "{rule}"
    );
}

#[tokio::test]
async fn a_wrong_md5_is_refused_when_the_last_chunk_arrives() {
    let (fake, c, to) = session().await;
    let mut up = Up::new("a.bin", "doc", bytes(CHUNK + 9, 3), &to);
    let mut other = up.data.clone();
    other[5] ^= 1;
    up.md5 = hex(&Md5::digest(&other)); // the md5 of other bytes than those sent
    assert_eq!(
        post_fields(&c, &up.fields(&c, &fake, 0)).await["BaseResponse"]["Ret"],
        0
    );
    let last = up.fields(&c, &fake, 1);
    let v = post_fields(&c, &last).await;
    assert_eq!(v["BaseResponse"]["Ret"], 1, "{v}");
    assert!(fake.violations()[0].rule.contains("FileMd5"));
    assert!(fake.uploads().is_empty());
}

#[tokio::test]
async fn a_missing_or_foreign_data_ticket_is_refused() {
    let (fake, c, to) = session().await;
    let up = Up::new("a.txt", "doc", bytes(100, 3), &to);
    let rule = broken(&fake, &c, &up, 0, |f| f[7].1 = b"not-the-cookie".to_vec()).await;
    assert!(rule.contains("webwx_data_ticket"), "{rule}");
    let (fake, c, to) = session().await;
    let up = Up::new("a.txt", "doc", bytes(100, 3), &to);
    let rule = broken(&fake, &c, &up, 0, |f| {
        f.remove(7);
    })
    .await;
    assert!(rule.contains("official order"), "{rule}");
}

#[tokio::test]
async fn fields_out_of_the_official_order_or_wrong_values_are_refused() {
    let cases: Vec<(&str, Edit)> = vec![
        ("official order", Box::new(|f| f.swap(0, 1))),
        ("WU_FILE", Box::new(|f| f[0].1 = b"file0".to_vec())),
        ("mediatype", Box::new(|f| f[5].1 = b"pic".to_vec())),
        ("TotalLen", Box::new(|f| f[4].1 = b"99".to_vec())),
        (
            "UploadType",
            Box::new(|f| {
                let mut req: Value = serde_json::from_slice(&f[6].1).unwrap();
                req["UploadType"] = json!(1);
                f[6].1 = req.to_string().into_bytes();
            }),
        ),
        (
            "StartPos",
            Box::new(|f| {
                let mut req: Value = serde_json::from_slice(&f[6].1).unwrap();
                req["StartPos"] = json!(10);
                f[6].1 = req.to_string().into_bytes();
            }),
        ),
        (
            "ToUserName",
            Box::new(|f| {
                let mut req: Value = serde_json::from_slice(&f[6].1).unwrap();
                req["ToUserName"] = json!("@nobody");
                f[6].1 = req.to_string().into_bytes();
            }),
        ),
    ];
    for (want, edit) in cases {
        let (fake, c, to) = session().await;
        let up = Up::new("notes.txt", "doc", bytes(1000, 3), &to);
        let rule = broken(&fake, &c, &up, 0, |f| edit(f)).await;
        assert!(rule.contains(want), "{want}: {rule}");
    }
}

#[tokio::test]
async fn over_25_mib_needs_checkupload_and_its_signature() {
    let (fake, c, to) = session().await;
    let size = 25 * 1024 * 1024 + 1;
    let mut up = Up::new("big.zip", "doc", bytes(size, 9), &to);
    // Without checkupload the first chunk is refused.
    let first = post_fields(&c, &up.fields(&c, &fake, 0)).await;
    assert_eq!(first["BaseResponse"]["Ret"], 1);
    assert!(fake.violations()[0].rule.contains("webwxcheckupload"));

    let check = |file_type: u32| {
        json!({"BaseRequest": c.base_request(), "FileMd5": up.md5(), "FileName": "big.zip",
            "FileSize": size, "FileType": file_type, "FromUserName": c.me, "ToUserName": to})
    };
    let (_, v) = c.post("webwxcheckupload", &check(1)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 1, "FileType 7 is required: {v}");
    let (_, v) = c.post("webwxcheckupload", &check(7)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    assert_eq!(v["MediaId"], "");
    let (aes, sig) = (
        v["AESKey"].as_str().unwrap(),
        v["Signature"].as_str().unwrap(),
    );
    assert!(!aes.is_empty() && !sig.is_empty());
    up.signed = Some((aes.to_owned(), sig.to_owned()));
    let done = upload(&c, &fake, &up).await;
    let media_id = done["MediaId"].as_str().unwrap().to_owned();
    let u = &fake.uploads()[0];
    assert!(u.signed);
    assert_eq!(u.chunks, 51);

    let xml = appmsg("big.zip", size, &media_id, "zip");
    let file = |sig: &str| json!({"Type": 6, "Content": xml, "ToUserName": to, "Signature": sig});
    let v = send(&c, "webwxsendappmsg", &ASYNC, file("")).await;
    assert_eq!(
        v["BaseResponse"]["Ret"], 1,
        "a large file needs the Signature: {v}"
    );
    let v = send(&c, "webwxsendappmsg", &ASYNC, file(sig)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    assert_eq!(fake.violations().len(), 3);
}

#[tokio::test]
async fn a_desktop_mode_file_send_needs_mod_desktop_and_an_empty_appid() {
    let fake = start().await;
    let c = logged_in_as(&fake, true).await;
    let to = fake.add_contact("Ann", "");
    let up = Up::new("a.txt", "doc", bytes(300, 4), &to);
    let media_id = upload(&c, &fake, &up).await["MediaId"]
        .as_str()
        .unwrap()
        .to_owned();
    let web = appmsg("a.txt", 300, &media_id, "txt");
    let desktop = web.replace("appid='wxeb7ec651dd0aefa9'", "appid=''");
    let file = |xml: &str| json!({"Type": 6, "Content": xml, "ToUserName": to});
    let with_mod = [("fun", "async"), ("f", "json"), ("mod", "desktop")];
    let v = send(&c, "webwxsendappmsg", &ASYNC, file(&desktop)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 1, "no mod=desktop: {v}");
    let v = send(&c, "webwxsendappmsg", &with_mod, file(&web)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 1, "the web client's appid: {v}");
    let v = send(&c, "webwxsendappmsg", &with_mod, file(&desktop)).await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    let rules: Vec<String> = fake.violations().into_iter().map(|v| v.rule).collect();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(
        rules[0].contains("mod=desktop") && rules[1].contains("appid"),
        "{rules:?}"
    );
}
