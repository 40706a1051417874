//! Inbound message builders: realistic `AddMsgList` entries (PROTOCOL.md §8) for every type
//! of DESIGN.md's inbound event table, with the server's escaping (§8.4) and emoji spans (§8.5).
//!
//! A [`Msg`] is a template; [`FakeWeChat::queue`](crate::FakeWeChat::queue) gives it its
//! MsgId, NewMsgId and CreateTime and fills in the account's own UserName where the builder
//! said "self".

use serde_json::{json, Map, Value};

use crate::escape::{wx_escape, wx_escape_xml, xml_attr, xml_text};
use crate::ids;

/// Replaced by the MsgId when the message is queued (the location preview path holds it).
const MSG_ID_MARK: &str = "{MSGID}";

/// Someone a message is from or to: the account itself, or a UserName.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Party {
    Me,
    User(String),
}

impl Party {
    fn resolve(&self, me: &str) -> String {
        match self {
            Party::Me => me.to_owned(),
            Party::User(u) => u.clone(),
        }
    }
}

/// An inbound message to queue. Build one with a constructor, adjust it with the chainable
/// modifiers, then hand it to [`FakeWeChat::queue`](crate::FakeWeChat::queue).
///
/// Text arguments are plain text: the builders escape `& < > "` to entities, turn `\n` into
/// `<br/>` and Unicode emoji into `<span class="emoji emoji1f604"></span>`, as the server does.
/// Use [`Msg::content`] to set an exact, already-escaped Content.
#[derive(Clone, Debug)]
pub struct Msg {
    from: Party,
    to: Party,
    fields: Map<String, Value>,
    raw: bool,
    /// The length of the media bytes, when a test chose it ([`Msg::media_len`]).
    pub(crate) media_len: Option<u64>,
}

impl Msg {
    fn new(from: Party, msg_type: u32, content: String) -> Msg {
        let mut fields = Map::new();
        fields.insert("MsgType".into(), json!(msg_type));
        fields.insert("Content".into(), json!(content));
        Msg {
            from,
            to: Party::Me,
            fields,
            raw: false,
            media_len: None,
        }
    }

    fn user(from: &str, msg_type: u32, content: String) -> Msg {
        Msg::new(Party::User(from.to_owned()), msg_type, content)
    }

    /// Text (MsgType 1) from a person or official account to the account.
    pub fn text(from: &str, text: &str) -> Msg {
        Msg::user(from, 1, wx_escape(text))
    }

    /// Text in a group from one of its members: From is the group, Content starts with
    /// `<member UserName>:<br/>`. Put `@Nick\u{2005}` in `text` for a mention.
    pub fn group_text(group: &str, member: &str, text: &str) -> Msg {
        Msg::text(group, text).in_group(group, member)
    }

    /// Text the account wrote on its phone: From is the account, To is `to`, no group prefix.
    pub fn phone_text(to: &str, text: &str) -> Msg {
        Msg::new(Party::Me, 1, wx_escape(text)).to(to)
    }

    /// A shared location: MsgType 1 with SubMsgType 48, a map Url, Content
    /// `<label>:<br/><preview path>` and the location XML in OriContent.
    pub fn location(from: &str, label: &str, lat: f64, lon: f64) -> Msg {
        let preview = format!(
            "/cgi-bin/mmwebwx-bin/webwxgetpubliclinkimg?url=xxx&msgid={MSG_ID_MARK}&pictype=location"
        );
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<msg>\n\t<location x=\"{lat}\" y=\"{lon}\" scale=\"16\" label=\"{}\" maptype=\"roadmap\" poiname=\"[位置]\" poiid=\"\" />\n</msg>\n",
            xml_attr(label)
        );
        Msg::user(from, 1, format!("{}:<br/>{preview}", wx_escape(label)))
            .with("SubMsgType", json!(48))
            .with(
                "Url",
                json!(format!(
                    "http://apis.map.qq.com/uri/v1/geocoder?coord={lat},{lon}"
                )),
            )
            .with("OriContent", json!(wx_escape_xml(&xml)))
    }

    /// An image (MsgType 3).
    pub fn image(from: &str) -> Msg {
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<msg>\n\t<img aeskey=\"{}\" encryver=\"1\" cdnthumbaeskey=\"{}\" cdnthumblength=\"3482\" cdnthumbheight=\"120\" cdnthumbwidth=\"90\" length=\"48213\" md5=\"{}\" />\n</msg>\n",
            ids::hex(32),
            ids::hex(32),
            ids::hex(32)
        );
        Msg::user(from, 3, wx_escape_xml(&xml))
            .with("ImgStatus", json!(2))
            .with("ImgHeight", json!(120))
            .with("ImgWidth", json!(90))
    }

    /// A voice note (MsgType 34) lasting `duration_ms`.
    pub fn voice(from: &str, duration_ms: u64) -> Msg {
        let xml = format!(
            "<msg><voicemsg endflag=\"1\" cancelflag=\"0\" forwardflag=\"0\" voiceformat=\"4\" voicelength=\"{duration_ms}\" length=\"5432\" bufid=\"0\" fromusername=\"{}\" /></msg>",
            ids::wxid()
        );
        Msg::user(from, 34, wx_escape_xml(&xml)).with("VoiceLength", json!(duration_ms))
    }

    /// A video (MsgType 43) lasting `duration_s`.
    pub fn video(from: &str, duration_s: u64) -> Msg {
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<msg>\n\t<videomsg aeskey=\"{}\" cdnthumbaeskey=\"{}\" length=\"1234567\" playlength=\"{duration_s}\" cdnthumblength=\"9000\" cdnthumbwidth=\"224\" cdnthumbheight=\"398\" fromusername=\"{}\" md5=\"{}\" isad=\"0\" />\n</msg>\n",
            ids::hex(32),
            ids::hex(32),
            ids::wxid(),
            ids::hex(32)
        );
        Msg::user(from, 43, wx_escape_xml(&xml))
            .with("PlayLength", json!(duration_s))
            .with("ImgStatus", json!(2))
            .with("ImgHeight", json!(398))
            .with("ImgWidth", json!(224))
    }

    /// An emoticon or sticker (MsgType 47).
    pub fn emoticon(from: &str) -> Msg {
        let xml = format!(
            "<msg><emoji fromusername = \"{}\" tousername = \"{}\" type=\"2\" idbuffer=\"media:0_0\" md5=\"{}\" len = \"40816\" productid=\"\" cdnurl = \"\" width= \"240\" height= \"240\" ></emoji></msg>",
            ids::wxid(),
            ids::wxid(),
            ids::hex(32)
        );
        Msg::user(from, 47, wx_escape_xml(&xml))
            .with("ImgStatus", json!(2))
            .with("HasProductId", json!(0))
    }

    /// A friend request (MsgType 37) from `fmessage`; RecommendInfo carries a fresh UserName,
    /// the nick, the greeting and a ticket (read them back with [`Msg::field`]).
    pub fn friend_request(nick: &str, greeting: &str) -> Msg {
        let ticket = format!("v2_{}@stranger", ids::hex(48));
        let xml = format!(
            "<msg fromusername=\"{}\" encryptusername=\"v1_{}@stranger\" fromnickname=\"{}\" content=\"{}\" fullpy=\"\" shortpy=\"\" imagestatus=\"3\" scene=\"30\" country=\"CN\" province=\"\" city=\"\" sign=\"\" percard=\"1\" sex=\"1\" alias=\"\" weibo=\"\" albumflag=\"0\" snsflag=\"1\" bigheadimgurl=\"\" smallheadimgurl=\"\" ticket=\"{ticket}\" opcode=\"2\" googlecontact=\"\" qrticket=\"\" chatroomusername=\"\" sourceusername=\"\" sourcenickname=\"\"><brandlist count=\"0\" ver=\"0\"></brandlist></msg>",
            ids::wxid(),
            ids::hex(48),
            xml_attr(nick),
            xml_attr(greeting)
        );
        let mut info = recommend_info();
        info["UserName"] = json!(ids::person_user_name());
        info["NickName"] = json!(nick);
        info["Content"] = json!(greeting);
        info["Scene"] = json!(30);
        info["Sex"] = json!(1);
        info["Ticket"] = json!(ticket);
        info["OpCode"] = json!(2);
        Msg::user("fmessage", 37, wx_escape_xml(&xml)).with("RecommendInfo", info)
    }

    /// A business card (MsgType 42) for `nick` / `alias`.
    pub fn card(from: &str, nick: &str, alias: &str) -> Msg {
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<msg bigheadimgurl=\"\" smallheadimgurl=\"\" username=\"v1_{}@stranger\" nickname=\"{}\" fullpy=\"\" shortpy=\"\" alias=\"{}\" imagestatus=\"3\" scene=\"17\" province=\"\" city=\"\" sign=\"\" sex=\"1\" certflag=\"0\" certinfo=\"\" brandIconUrl=\"\" brandHomeUrl=\"\" brandSubscriptConfigUrl=\"\" brandFlags=\"0\" regionCode=\"CN\" />\n",
            ids::hex(48),
            xml_attr(nick),
            xml_attr(alias)
        );
        let mut info = recommend_info();
        info["UserName"] = json!(ids::person_user_name());
        info["NickName"] = json!(nick);
        info["Alias"] = json!(alias);
        info["Scene"] = json!(17);
        info["Sex"] = json!(1);
        Msg::user(from, 42, wx_escape_xml(&xml)).with("RecommendInfo", info)
    }

    /// A link or article (MsgType 49, AppMsgType 5).
    pub fn link(from: &str, title: &str, description: &str, url: &str) -> Msg {
        Msg::app_msg(from, 5, title, description, url, "")
    }

    /// A file (MsgType 49, AppMsgType 6) with FileName, FileSize (a string), MediaId and
    /// EncryFileName set.
    pub fn file(from: &str, name: &str, size: u64) -> Msg {
        let media_id = ids::media_id();
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        let attach = format!(
            "<appattach><totallen>{size}</totallen><attachid>{media_id}</attachid><fileext>{}</fileext></appattach>",
            xml_text(ext)
        );
        Msg::app_msg(from, 6, name, "", "", &attach)
            .with("FileSize", json!(size.to_string()))
            .with("MediaId", json!(media_id))
            .with("EncryFileName", json!(ids::encry_file_name(name)))
    }

    /// Any other app message (MsgType 49) with the given AppMsgType, title and url.
    pub fn app(from: &str, app_msg_type: u32, title: &str, url: &str) -> Msg {
        Msg::app_msg(from, app_msg_type, title, "", url, "")
    }

    fn app_msg(from: &str, kind: u32, title: &str, des: &str, url: &str, extra: &str) -> Msg {
        let xml = format!(
            "<?xml version=\"1.0\"?>\n<msg>\n\t<appmsg appid=\"\" sdkver=\"0\">\n\t\t<title>{}</title>\n\t\t<des>{}</des>\n\t\t<action />\n\t\t<type>{kind}</type>\n\t\t<showtype>0</showtype>\n\t\t<content />\n\t\t<url>{}</url>\n\t\t<lowurl />\n\t\t{extra}\n\t\t<extinfo />\n\t</appmsg>\n\t<fromusername>{}</fromusername>\n\t<scene>0</scene>\n\t<appinfo>\n\t\t<version>1</version>\n\t\t<appname></appname>\n\t</appinfo>\n\t<commenturl></commenturl>\n</msg>\n",
            xml_text(title),
            xml_text(des),
            xml_text(url),
            ids::wxid()
        );
        Msg::user(from, 49, wx_escape_xml(&xml))
            .with("AppMsgType", json!(kind))
            .with("FileName", json!(title))
            .with("Url", json!(url))
    }

    /// A system notice (MsgType 10000) in `chat` ("X joined the group", "拍了拍"…); never
    /// has a group prefix.
    pub fn system(chat: &str, text: &str) -> Msg {
        Msg::user(chat, 10000, wx_escape(text))
    }

    /// A recall (MsgType 10002) in `chat` of the message `revoked_msg_id`.
    pub fn revoke(chat: &str, revoked_msg_id: &str, replace: &str) -> Msg {
        let xml = format!(
            "<sysmsg type=\"revokemsg\"><revokemsg><session>{}</session><oldmsgid>{}</oldmsgid><msgid>{}</msgid><replacemsg><![CDATA[{replace}]]></replacemsg></revokemsg></sysmsg>",
            xml_text(chat),
            fastrand::u32(1_000_000_000..2_000_000_000),
            xml_text(revoked_msg_id)
        );
        Msg::user(chat, 10002, wx_escape_xml(&xml))
    }

    /// A status notify (MsgType 51) from the account to itself: `code` 4 syncs the
    /// conversation list `user_names`; 2 means the phone entered a chat, 1 read.
    pub fn status_notify(code: u32, user_names: &[&str]) -> Msg {
        let list = user_names.join(",");
        let xml = format!(
            "<msg>\n<op id='{code}'>\n<username>{}</username>\n</op>\n</msg>",
            xml_text(&list)
        );
        Msg::new(Party::Me, 51, wx_escape_xml(&xml))
            .with("StatusNotifyCode", json!(code))
            .with("StatusNotifyUserName", json!(list))
    }

    /// An entry used as given: only MsgId, NewMsgId, CreateTime, FromUserName and
    /// ToUserName are filled in when absent (From and To default to the account).
    pub fn raw(entry: Value) -> Msg {
        let fields = match entry {
            Value::Object(m) => m,
            other => panic!("Msg::raw needs a JSON object, got {other}"),
        };
        let party = |key: &str| match fields.get(key).and_then(Value::as_str) {
            Some(u) => Party::User(u.to_owned()),
            None => Party::Me,
        };
        Msg {
            from: party("FromUserName"),
            to: party("ToUserName"),
            fields,
            raw: true,
            media_len: None,
        }
    }

    /// A captured AddMsgList entry replayed as it was received: every field is kept,
    /// MsgId, NewMsgId and CreateTime included. Only the captured account's own UserName
    /// `own` is swapped for this fake's account where it stands as FromUserName or
    /// ToUserName, since a UserName is valid for one login only (PROTOCOL.md §5.3); with
    /// `own` `None` (a redacted capture that hides the account) From and To stay as given.
    ///
    /// Queue it with [`FakeWeChat::queue_verbatim`](crate::FakeWeChat::queue_verbatim),
    /// which also makes the entry's other UserNames known contacts.
    pub fn verbatim(entry: Value, own: Option<&str>) -> Msg {
        let mut msg = Msg::raw(entry);
        for key in ["FromUserName", "ToUserName"] {
            let Some(Value::String(user)) = msg.fields.get(key) else {
                continue;
            };
            let party = if Some(user.as_str()) == own {
                Party::Me
            } else {
                Party::User(user.clone())
            };
            msg.fields.remove(key);
            if key == "FromUserName" {
                msg.from = party;
            } else {
                msg.to = party;
            }
        }
        msg
    }

    /// The UserNames a contact book needs to resolve this entry: From, To and the group
    /// sender prefix of Content, when they are session UserNames (`@…`) of others.
    pub(crate) fn parties(&self) -> (Vec<String>, Option<String>) {
        let users = [&self.from, &self.to]
            .into_iter()
            .filter_map(|p| match p {
                Party::User(u) if u.starts_with('@') => Some(u.clone()),
                _ => None,
            })
            .collect();
        let content = self.field("Content").and_then(Value::as_str).unwrap_or("");
        let member = content
            .split_once(":<br/>")
            .map(|(m, _)| m)
            .filter(|m| m.starts_with('@') && !m.starts_with("@@") && m.len() > 1)
            .filter(|m| m[1..].bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned);
        (users, member)
    }

    /// Moves the message into `group` as written by `member`: From becomes the group and
    /// Content gets the `<member>:<br/>` prefix (§8.3).
    pub fn in_group(mut self, group: &str, member: &str) -> Msg {
        self.from = Party::User(group.to_owned());
        let content = self.field("Content").and_then(Value::as_str).unwrap_or("");
        let prefixed = format!("{member}:<br/>{content}");
        self.with("Content", json!(prefixed))
    }

    /// Makes the media bytes a download of this message serves `n` bytes long (images,
    /// voice, video, emoticons and files; see [`FakeWeChat::media_bytes`]): a video large
    /// enough to need several Range requests, a file over a size limit. A file's FileSize
    /// and the `totallen` of its Content follow `n`. Below the smallest valid file of the
    /// kind, that smallest file is served (files are cut to FileSize exactly).
    ///
    /// Without it an image is a JPEG of ImgWidth×ImgHeight at its natural size, a voice
    /// note holds VoiceLength of MP3 frames, a video is 128 KiB, an emoticon a 240×240 GIF,
    /// a file FileSize bytes.
    ///
    /// [`FakeWeChat::media_bytes`]: crate::FakeWeChat::media_bytes
    pub fn media_len(mut self, n: u64) -> Msg {
        self.media_len = Some(n);
        if self.field("AppMsgType").and_then(Value::as_u64) == Some(6) {
            let old = self
                .field("FileSize")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let content = self.field("Content").and_then(Value::as_str).unwrap_or("");
            let content = content.replace(
                &format!("&lt;totallen&gt;{old}&lt;/totallen&gt;"),
                &format!("&lt;totallen&gt;{n}&lt;/totallen&gt;"),
            );
            self = self
                .with("Content", json!(content))
                .with("FileSize", json!(n.to_string()));
        }
        self
    }

    /// Sets ToUserName (the default is the account itself).
    pub fn to(mut self, to: &str) -> Msg {
        self.to = Party::User(to.to_owned());
        self
    }

    /// Makes the account the sender (written on the phone).
    pub fn from_self(mut self) -> Msg {
        self.from = Party::Me;
        self
    }

    /// Sets the exact, already-escaped Content.
    pub fn content(self, content: &str) -> Msg {
        self.with("Content", json!(content))
    }

    /// Sets any field of the entry.
    pub fn with(mut self, key: &str, value: Value) -> Msg {
        self.fields.insert(key.to_owned(), value);
        self
    }

    /// A field as it stands (before queueing, so without MsgId).
    pub fn field(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// The finished AddMsgList entry. MsgId and NewMsgId are the same number, as a string and
    /// as a JSON number respectively (§2).
    pub(crate) fn finish(self, me: &str, id: u64, now: u64) -> Value {
        let mut entry = if self.raw { Map::new() } else { template() };
        let ours = [
            ("MsgId", json!(id.to_string())),
            ("NewMsgId", json!(id)),
            ("CreateTime", json!(now)),
            ("FromUserName", json!(self.from.resolve(me))),
            ("ToUserName", json!(self.to.resolve(me))),
        ];
        for (k, v) in ours {
            entry.insert(k.to_owned(), v);
        }
        entry.extend(self.fields);
        if let Some(Value::String(c)) = entry.get_mut("Content") {
            if c.contains(MSG_ID_MARK) {
                *c = c.replace(MSG_ID_MARK, &id.to_string());
            }
        }
        Value::Object(entry)
    }
}

/// Every field a real AddMsgList entry has, at its neutral value.
fn template() -> Map<String, Value> {
    let v = json!({
        "MsgId": "", "FromUserName": "", "ToUserName": "", "MsgType": 1, "Content": "",
        "Status": 3, "ImgStatus": 1, "CreateTime": 0, "VoiceLength": 0, "PlayLength": 0,
        "FileName": "", "FileSize": "", "MediaId": "", "Url": "", "AppMsgType": 0,
        "StatusNotifyCode": 0, "StatusNotifyUserName": "", "RecommendInfo": recommend_info(),
        "ForwardFlag": 0, "AppInfo": {"AppID": "", "Type": 0}, "HasProductId": 0, "Ticket": "",
        "ImgHeight": 0, "ImgWidth": 0, "SubMsgType": 0, "NewMsgId": 0, "OriContent": "",
        "EncryFileName": ""
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("template is an object"),
    }
}

fn recommend_info() -> Value {
    json!({
        "UserName": "", "NickName": "", "QQNum": 0, "Province": "", "City": "", "Content": "",
        "Signature": "", "Alias": "", "Scene": 0, "VerifyFlag": 0, "AttrStatus": 0, "Sex": 0,
        "Ticket": "", "OpCode": 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_text_has_the_sender_prefix() {
        let v = Msg::group_text("@@g", "@m", "hi\nthere").finish("@me", 7, 1);
        assert_eq!(v["FromUserName"], "@@g");
        assert_eq!(v["ToUserName"], "@me");
        assert_eq!(v["Content"], "@m:<br/>hi<br/>there");
        assert_eq!(v["MsgId"], "7");
        assert_eq!(v["NewMsgId"], 7);
    }

    #[test]
    fn typed_builders_set_their_fields() {
        let f = Msg::file("@a", "r&d.pdf", 48213).finish("@me", 9, 1);
        assert_eq!(f["MsgType"], 49);
        assert_eq!(f["AppMsgType"], 6);
        assert_eq!(f["FileSize"], "48213");
        assert_eq!(f["FileName"], "r&d.pdf");
        let content = f["Content"].as_str().unwrap();
        assert!(content.contains("&lt;title&gt;r&amp;amp;d.pdf&lt;/title&gt;"));
        let loc = Msg::location("@a", "Tower", 39.9, 116.3).finish("@me", 5, 1);
        assert_eq!(loc["SubMsgType"], 48);
        assert!(loc["Content"].as_str().unwrap().starts_with("Tower:<br/>"));
        assert!(loc["Content"].as_str().unwrap().contains("msgid=5&"));
        let r = Msg::revoke("@a", "123", "x").finish("@me", 6, 1);
        assert!(r["Content"]
            .as_str()
            .unwrap()
            .contains("&lt;msgid&gt;123&lt;/msgid&gt;"));
        let fr = Msg::friend_request("Nick", "hello").finish("@me", 8, 1);
        assert_eq!(fr["FromUserName"], "fmessage");
        assert_eq!(fr["RecommendInfo"]["Content"], "hello");
        let sn = Msg::status_notify(4, &["@a", "@@b"]).finish("@me", 10, 1);
        assert_eq!(sn["FromUserName"], "@me");
        assert_eq!(sn["StatusNotifyUserName"], "@a,@@b");
    }

    #[test]
    fn verbatim_keeps_ids_and_swaps_only_the_own_user_name() {
        let entry = json!({"MsgId": "42", "NewMsgId": 42, "CreateTime": 1463839052,
            "FromUserName": "@@g", "ToUserName": "@captured", "MsgType": 1,
            "Content": "@m:<br/>hi @captured"});
        let v = Msg::verbatim(entry.clone(), Some("@captured")).finish("@me", 3, 4);
        assert_eq!(v["MsgId"], "42");
        assert_eq!(v["NewMsgId"], 42);
        assert_eq!(v["CreateTime"], 1463839052);
        assert_eq!(v["FromUserName"], "@@g");
        assert_eq!(v["ToUserName"], "@me");
        assert_eq!(v["Content"], "@m:<br/>hi @captured");
        let kept = Msg::verbatim(entry, None).finish("@me", 3, 4);
        assert_eq!(kept["ToUserName"], "@captured");
        let (users, member) = Msg::verbatim(
            json!({"FromUserName": "@@g", "ToUserName": "filehelper",
            "Content": "@m1:<br/>x"}),
            None,
        )
        .parties();
        assert_eq!(users, vec!["@@g".to_owned()]);
        assert_eq!(member.as_deref(), Some("@m1"));
    }

    #[test]
    fn raw_keeps_given_fields() {
        let v =
            Msg::raw(json!({"MsgType": 9999, "MsgId": "1", "Content": "x"})).finish("@me", 3, 4);
        assert_eq!(v["MsgId"], "1");
        assert_eq!(v["NewMsgId"], 3);
        assert_eq!(v["FromUserName"], "@me");
        assert!(v.get("RecommendInfo").is_none());
    }
}
