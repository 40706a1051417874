//! Which request each kind of held event makes, and which events are held.
use super::*;
use crate::wechat::client::{announced_length, MediaEndpoint};

fn event(extra: &str, raw: &str) -> MessageEvent {
    serde_json::from_str(&format!(
        r#"{{"kind":"message","id":"42","account":"a","time":"2026-01-01T00:00:00Z",
        "type":"image","msg_type":3,"origin":"contact",
        "chat":{{"id":"@x","name":"x","group":false}},
        "from":{{"id":"@x","name":"x","remark":null,"self":false}},
        "text":null,"mentioned":false,{extra},"raw":{raw}}}"#
    ))
    .unwrap()
}

fn config(download: &[MediaDownload]) -> MediaConfig {
    MediaConfig {
        download: download.to_vec(),
        ..MediaConfig::default()
    }
}

#[test]
fn an_attachment_is_asked_for_with_the_raw_entrys_sender_and_encrypted_name() {
    let e = event(
        r#""file":{"name":"a.pdf","size":12,"media_id":"@crypt_1","sha256":null,"mime":null}"#,
        r#"{"FromUserName":"@alice","MediaId":"@crypt_1","EncryFileName":"a%2Epdf"}"#,
    );
    let (req, announced) = MediaRequest::for_event(&e).unwrap();
    assert_eq!(req.endpoint, MediaEndpoint::Attachment);
    assert_eq!(req.sender, "@alice");
    assert_eq!(req.media_id, "@crypt_1");
    assert_eq!(req.encry_file_name, "a%2Epdf");
    assert_eq!(announced, Some(12), "FileSize is checked before asking");
}

#[test]
fn images_and_stickers_come_from_getmsgimg_videos_from_getvideo() {
    for (kind, endpoint) in [
        ("image", MediaEndpoint::MsgImg),
        ("emoticon", MediaEndpoint::MsgImg),
        ("voice", MediaEndpoint::Voice),
        ("video", MediaEndpoint::Video),
    ] {
        let e = event(
            &format!(
                r#""media":{{"msg_id":"42","kind":"{kind}","sha256":null,"mime":null,"size":null}}"#
            ),
            "{}",
        );
        let (req, announced) = MediaRequest::for_event(&e).unwrap();
        assert_eq!((req.endpoint, req.msg_id.as_str()), (endpoint, "42"));
        assert_eq!(announced, None);
    }
}

#[test]
fn a_video_announces_its_length_in_its_xml_an_image_does_not_count() {
    let video = event(
        r#""media":{"msg_id":"42","kind":"video","sha256":null,"mime":null,"size":null,"duration_s":3}"#,
        r#"{"Content":"&lt;msg&gt;&lt;videomsg cdnthumblength=&quot;9&quot; playlength=&quot;3&quot; length=&quot;5000&quot; /&gt;"}"#,
    );
    assert_eq!(MediaRequest::for_event(&video).unwrap().1, Some(5000));
    let image = event(
        r#""media":{"msg_id":"42","kind":"image","sha256":null,"mime":null,"size":null}"#,
        r#"{"Content":"&lt;msg&gt;&lt;img length=&quot;5000&quot; /&gt;"}"#,
    );
    assert_eq!(MediaRequest::for_event(&image).unwrap().1, None);
    assert_eq!(
        announced_length(r#"<voicemsg voicelength="3000" length="812"/>"#),
        Some(812)
    );
    assert_eq!(announced_length("@token"), None);
}

#[test]
fn only_the_kinds_in_media_download_are_waited_for() {
    let image = event(
        r#""media":{"msg_id":"42","kind":"image","sha256":null,"mime":null,"size":null}"#,
        "{}",
    );
    let text = event(r#""location":{"label":"x","url":null}"#, "{}");
    assert!(wanted(&config(&[MediaDownload::Image]), &image));
    assert!(!wanted(&config(&[MediaDownload::File]), &image));
    assert!(!wanted(&config(&[]), &image));
    assert!(!wanted(&config(&[MediaDownload::Image]), &text));
}
