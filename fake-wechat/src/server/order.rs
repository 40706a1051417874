//! The order of the members in every JSON answer, as the real servers write them.
//!
//! The fake builds its answers as `serde_json::Value`s, whose objects (without serde_json's
//! `preserve_order`, which the workspace must not turn on: feature unification would change
//! the bridge's own maps in tests) iterate in alphabetical order. The real servers do not:
//! `BaseResponse` comes first, `Ret` before `ErrMsg`, `AddMsgCount` before `AddMsgList`.
//! So each answer is serialized through an [`Ordered`] view that walks a [`Shape`], a table of
//! member names in the captured order, transcribed from the real answers in
//! `tests/corpus/real/answers/` (the file each table follows is named on it). The view borrows
//! the value, so the streamed webwxsync answer is still written straight from the stream.
//!
//! Members a table does not name (a captured entry replayed verbatim may carry fields a web
//! client added) follow the named ones, alphabetically.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// The member order of one kind of JSON object, and the shapes of its members' values.
pub(crate) struct Shape {
    members: &'static [(&'static str, Child)],
}

/// What a member holds.
#[derive(Clone, Copy)]
pub(crate) enum Child {
    /// A scalar (or anything no capture shows inside): written as it is.
    Plain,
    /// An object of this shape.
    Obj(&'static Shape),
    /// An array of objects of this shape.
    List(&'static Shape),
}

use Child::{List, Obj, Plain};

/// `value`, serialized with its objects' members in `shape`'s order.
pub(crate) struct Ordered<'a> {
    value: &'a Value,
    child: Child,
}

impl<'a> Ordered<'a> {
    /// An object (or anything else, written as is) of shape `shape`.
    pub fn new(value: &'a Value, shape: &'static Shape) -> Ordered<'a> {
        Ordered {
            value,
            child: Obj(shape),
        }
    }

    /// An entry of a list whose items have the shape `child` names.
    pub fn entry(value: &'a Value, child: Child) -> Ordered<'a> {
        Ordered { value, child }
    }
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match (self.child, self.value) {
            (Obj(shape), Value::Object(map)) => {
                let mut out = ser.serialize_map(Some(map.len()))?;
                let mut written = 0;
                for &(key, child) in shape.members {
                    if let Some(value) = map.get(key) {
                        out.serialize_entry(key, &Ordered { value, child })?;
                        written += 1;
                    }
                }
                // Only a replayed or hand-made entry has members the table does not name.
                if written < map.len() {
                    for (key, value) in map {
                        if shape.members.iter().all(|(k, _)| k != key) {
                            out.serialize_entry(key, value)?;
                        }
                    }
                }
                out.end()
            }
            (List(shape), Value::Array(items)) => {
                let mut out = ser.serialize_seq(Some(items.len()))?;
                for value in items {
                    out.serialize_element(&Ordered {
                        value,
                        child: Obj(shape),
                    })?;
                }
                out.end()
            }
            (_, value) => value.serialize(ser),
        }
    }
}

/// `BaseResponse` (every capture).
/// An object of shape `shape` whose member `key` is written from `with` instead of from
/// `value` (which need not hold it): a long list, such as a large account's MemberLists
/// (25,000 members in one webwxbatchgetcontact answer), is then written straight from the
/// fake's own records, without a `Value` built and dropped for every entry.
pub(crate) struct Spliced<'a, T> {
    /// The other members.
    pub value: &'a Value,
    /// The member order; it names `key`.
    pub shape: &'static Shape,
    /// The member written from `with`.
    pub key: &'static str,
    /// What `key` holds.
    pub with: T,
}

impl<T: Serialize> Serialize for Spliced<'_, T> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let Value::Object(map) = self.value else {
            return self.value.serialize(ser);
        };
        let held = map.contains_key(self.key);
        let mut out = ser.serialize_map(Some(map.len() + usize::from(!held)))?;
        let mut written = usize::from(held);
        for &(key, child) in self.shape.members {
            if key == self.key {
                out.serialize_entry(key, &self.with)?;
            } else if let Some(value) = map.get(key) {
                out.serialize_entry(key, &Ordered { value, child })?;
                written += 1;
            }
        }
        if written < map.len() {
            for (key, value) in map {
                if self.shape.members.iter().all(|(k, _)| k != key) {
                    out.serialize_entry(key, value)?;
                }
            }
        }
        out.end()
    }
}

pub(crate) const BASE_RESPONSE: Shape = Shape {
    members: &[("Ret", Plain), ("ErrMsg", Plain)],
};

const KEY_VAL: Shape = Shape {
    members: &[("Key", Plain), ("Val", Plain)],
};

/// `SyncKey` and `SyncCheckKey`.
pub(crate) const SYNC_KEY: Shape = Shape {
    members: &[("Count", Plain), ("List", List(&KEY_VAL))],
};

/// A group member in a contact's `MemberList` (gowebwx/qjesus webwxbatchgetcontact, wechat4u
/// webwxsync's ModContactList).
const MEMBER: Shape = Shape {
    members: &[
        ("Uin", Plain),
        ("UserName", Plain),
        ("NickName", Plain),
        ("AttrStatus", Plain),
        ("PYInitial", Plain),
        ("PYQuanPin", Plain),
        ("RemarkPYInitial", Plain),
        ("RemarkPYQuanPin", Plain),
        ("MemberStatus", Plain),
        ("DisplayName", Plain),
        ("KeyWord", Plain),
    ],
};

/// A contact in webwxinit's `ContactList`, webwxgetcontact's `MemberList` and
/// webwxbatchgetcontact's `ContactList` (qjesus, the 2018 raw capture: the 2016 ones end at
/// `EncryChatRoomId`, without `IsOwner`).
pub(crate) const CONTACT: Shape = Shape {
    members: &[
        ("Uin", Plain),
        ("UserName", Plain),
        ("NickName", Plain),
        ("HeadImgUrl", Plain),
        ("ContactFlag", Plain),
        ("MemberCount", Plain),
        ("MemberList", List(&MEMBER)),
        ("RemarkName", Plain),
        ("HideInputBarFlag", Plain),
        ("Sex", Plain),
        ("Signature", Plain),
        ("VerifyFlag", Plain),
        ("OwnerUin", Plain),
        ("PYInitial", Plain),
        ("PYQuanPin", Plain),
        ("RemarkPYInitial", Plain),
        ("RemarkPYQuanPin", Plain),
        ("StarFriend", Plain),
        ("AppAccountFlag", Plain),
        ("Statues", Plain),
        ("AttrStatus", Plain),
        ("Province", Plain),
        ("City", Plain),
        ("Alias", Plain),
        ("SnsFlag", Plain),
        ("UniFriend", Plain),
        ("DisplayName", Plain),
        ("ChatRoomId", Plain),
        ("KeyWord", Plain),
        ("EncryChatRoomId", Plain),
        ("IsOwner", Plain),
    ],
};

/// A contact in webwxsync's `ModContactList`: a field set of its own (wechat4u's webwxsync,
/// the only capture with one).
const MOD_CONTACT: Shape = Shape {
    members: &[
        ("UserName", Plain),
        ("NickName", Plain),
        ("Sex", Plain),
        ("HeadImgUpdateFlag", Plain),
        ("ContactType", Plain),
        ("Alias", Plain),
        ("ChatRoomOwner", Plain),
        ("HeadImgUrl", Plain),
        ("ContactFlag", Plain),
        ("MemberCount", Plain),
        ("MemberList", List(&MEMBER)),
        ("HideInputBarFlag", Plain),
        ("Signature", Plain),
        ("VerifyFlag", Plain),
        ("RemarkName", Plain),
        ("Statues", Plain),
        ("AttrStatus", Plain),
        ("Province", Plain),
        ("City", Plain),
        ("SnsFlag", Plain),
        ("KeyWord", Plain),
    ],
};

/// webwxinit's `User`, the account itself: a field set of its own (every webwxinit capture).
const USER: Shape = Shape {
    members: &[
        ("Uin", Plain),
        ("UserName", Plain),
        ("NickName", Plain),
        ("HeadImgUrl", Plain),
        ("RemarkName", Plain),
        ("PYInitial", Plain),
        ("PYQuanPin", Plain),
        ("RemarkPYInitial", Plain),
        ("RemarkPYQuanPin", Plain),
        ("HideInputBarFlag", Plain),
        ("StarFriend", Plain),
        ("Sex", Plain),
        ("Signature", Plain),
        ("AppAccountFlag", Plain),
        ("VerifyFlag", Plain),
        ("ContactFlag", Plain),
        ("WebWxPluginSwitch", Plain),
        ("HeadImgFlag", Plain),
        ("SnsFlag", Plain),
    ],
};

const MP_ARTICLE: Shape = Shape {
    members: &[
        ("Title", Plain),
        ("Digest", Plain),
        ("Cover", Plain),
        ("Url", Plain),
    ],
};

const MP_SUBSCRIBE_MSG: Shape = Shape {
    members: &[
        ("UserName", Plain),
        ("MPArticleCount", Plain),
        ("MPArticleList", List(&MP_ARTICLE)),
        ("Time", Plain),
        ("NickName", Plain),
    ],
};

/// The webwxinit answer (every capture).
pub(crate) const INIT: Shape = Shape {
    members: &[
        ("BaseResponse", Obj(&BASE_RESPONSE)),
        ("Count", Plain),
        ("ContactList", List(&CONTACT)),
        ("SyncKey", Obj(&SYNC_KEY)),
        ("User", Obj(&USER)),
        ("ChatSet", Plain),
        ("SKey", Plain),
        ("ClientVersion", Plain),
        ("SystemTime", Plain),
        ("GrayScale", Plain),
        ("InviteStartCount", Plain),
        ("MPSubscribeMsgCount", Plain),
        ("MPSubscribeMsgList", List(&MP_SUBSCRIBE_MSG)),
        ("ClickReportInterval", Plain),
    ],
};

/// The webwxstatusnotify answer (qjesus, urinx, wechat4u; the refusal too).
pub(crate) const STATUS_NOTIFY: Shape = Shape {
    members: &[("BaseResponse", Obj(&BASE_RESPONSE)), ("MsgID", Plain)],
};

/// The webwxgetcontact answer. The captures disagree: the 2016 ones (wechat4u, gowebwx) put
/// `Seq` last, the 2018 raw capture (qjesus) puts it right after `BaseResponse`, as
/// PROTOCOL.md §5.1 lists it. The newer, unprocessed capture is followed.
pub(crate) const GET_CONTACT: Shape = Shape {
    members: &[
        ("BaseResponse", Obj(&BASE_RESPONSE)),
        ("Seq", Plain),
        ("MemberCount", Plain),
        ("MemberList", List(&CONTACT)),
    ],
};

/// The webwxbatchgetcontact answer (gowebwx, qjesus).
pub(crate) const BATCH_GET_CONTACT: Shape = Shape {
    members: &[
        ("BaseResponse", Obj(&BASE_RESPONSE)),
        ("Count", Plain),
        ("ContactList", List(&CONTACT)),
    ],
};

/// The webwxsendmsg answer: no capture; PROTOCOL.md §9.1's order.
pub(crate) const SEND_MSG: Shape = Shape {
    members: &[
        ("BaseResponse", Obj(&BASE_RESPONSE)),
        ("MsgID", Plain),
        ("LocalID", Plain),
    ],
};

/// The webwxuploadmedia answer (a captured last-chunk answer, PROTOCOL.md §9.2).
pub(crate) const UPLOAD: Shape = Shape {
    members: &[
        ("BaseResponse", Obj(&BASE_RESPONSE)),
        ("MediaId", Plain),
        ("StartPos", Plain),
        ("CDNThumbImgHeight", Plain),
        ("CDNThumbImgWidth", Plain),
        ("EncryFileName", Plain),
    ],
};

/// The webwxcheckupload answer: no capture; PROTOCOL.md §9.2's order.
pub(crate) const CHECK_UPLOAD: Shape = Shape {
    members: &[
        ("BaseResponse", Obj(&BASE_RESPONSE)),
        ("MediaId", Plain),
        ("AESKey", Plain),
        ("Signature", Plain),
        ("EncryFileName", Plain),
    ],
};

/// The webwxpushloginurl answer: no capture; PROTOCOL.md §1.6's order.
pub(crate) const PUSH_LOGIN: Shape = Shape {
    members: &[("ret", Plain), ("msg", Plain), ("uuid", Plain)],
};

const RECOMMEND_INFO: Shape = Shape {
    members: &[
        ("UserName", Plain),
        ("NickName", Plain),
        ("QQNum", Plain),
        ("Province", Plain),
        ("City", Plain),
        ("Content", Plain),
        ("Signature", Plain),
        ("Alias", Plain),
        ("Scene", Plain),
        ("VerifyFlag", Plain),
        ("AttrStatus", Plain),
        ("Sex", Plain),
        ("Ticket", Plain),
        ("OpCode", Plain),
    ],
};

const APP_INFO: Shape = Shape {
    members: &[("AppID", Plain), ("Type", Plain)],
};

/// An `AddMsgList` entry (hotlcc and qjesus, 2018; the 2016 captures end at `NewMsgId`).
pub(crate) const MSG: Shape = Shape {
    members: &[
        ("MsgId", Plain),
        ("FromUserName", Plain),
        ("ToUserName", Plain),
        ("MsgType", Plain),
        ("Content", Plain),
        ("Status", Plain),
        ("ImgStatus", Plain),
        ("CreateTime", Plain),
        ("VoiceLength", Plain),
        ("PlayLength", Plain),
        ("FileName", Plain),
        ("FileSize", Plain),
        ("MediaId", Plain),
        ("Url", Plain),
        ("AppMsgType", Plain),
        ("StatusNotifyCode", Plain),
        ("StatusNotifyUserName", Plain),
        ("RecommendInfo", Obj(&RECOMMEND_INFO)),
        ("ForwardFlag", Plain),
        ("AppInfo", Obj(&APP_INFO)),
        ("HasProductId", Plain),
        ("Ticket", Plain),
        ("ImgHeight", Plain),
        ("ImgWidth", Plain),
        ("SubMsgType", Plain),
        ("NewMsgId", Plain),
        ("OriContent", Plain),
        ("EncryFileName", Plain),
    ],
};

/// A `DelContactList` entry: no capture holds one; PROTOCOL.md §7 names only `UserName`.
const DEL_CONTACT: Shape = Shape {
    members: &[("UserName", Plain), ("ContactFlag", Plain)],
};

const BUFF: Shape = Shape {
    members: &[("Buff", Plain)],
};

/// webwxsync's `Profile` (every webwxsync capture).
pub(crate) const PROFILE: Shape = Shape {
    members: &[
        ("BitFlag", Plain),
        ("UserName", Obj(&BUFF)),
        ("NickName", Obj(&BUFF)),
        ("BindUin", Plain),
        ("BindEmail", Obj(&BUFF)),
        ("BindMobile", Obj(&BUFF)),
        ("Status", Plain),
        ("Sex", Plain),
        ("PersonalCard", Plain),
        ("Alias", Plain),
        ("HeadImgUpdateFlag", Plain),
        ("HeadImgUrl", Plain),
        ("Signature", Plain),
    ],
};

/// The webwxsync answer (hotlcc, qjesus, gowebwx; wechat4u's 2016 one has no `SyncCheckKey`).
/// The streamed answer is a struct in this order; the table serves its refusal.
pub(crate) const SYNC: Shape = Shape {
    members: &[
        ("BaseResponse", Obj(&BASE_RESPONSE)),
        ("AddMsgCount", Plain),
        ("AddMsgList", List(&MSG)),
        ("ModContactCount", Plain),
        ("ModContactList", List(&MOD_CONTACT)),
        ("DelContactCount", Plain),
        ("DelContactList", List(&DEL_CONTACT)),
        ("ModChatRoomMemberCount", Plain),
        ("ModChatRoomMemberList", Plain),
        ("Profile", Obj(&PROFILE)),
        ("ContinueFlag", Plain),
        ("SyncKey", Obj(&SYNC_KEY)),
        ("SKey", Plain),
        ("SyncCheckKey", Obj(&SYNC_KEY)),
    ],
};

/// The shapes a streamed webwxsync answer's lists use.
pub(crate) const MSG_ENTRY: Child = Obj(&MSG);
pub(crate) const MOD_CONTACT_ENTRY: Child = Obj(&MOD_CONTACT);
pub(crate) const DEL_CONTACT_ENTRY: Child = Obj(&DEL_CONTACT);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_come_in_the_tables_order_and_unknown_ones_last() {
        let v = json!({"MsgID": "1", "Zed": 1, "BaseResponse": {"ErrMsg": "", "Ret": 0}, "Abc": [{"B": 1, "A": 2}]});
        let text = serde_json::to_string(&Ordered::new(&v, &STATUS_NOTIFY)).unwrap();
        assert_eq!(
            text,
            r#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"MsgID":"1","Abc":[{"A":2,"B":1}],"Zed":1}"#
        );
    }

    #[test]
    fn lists_order_each_item() {
        let v = json!({"Seq": 0, "MemberList": [{"UserName": "@a", "Uin": 0, "MemberList": [{"KeyWord": "", "Uin": 0}]}], "BaseResponse": {"Ret": 0, "ErrMsg": ""}, "MemberCount": 1});
        let text = serde_json::to_string(&Ordered::new(&v, &GET_CONTACT)).unwrap();
        assert_eq!(
            text,
            r#"{"BaseResponse":{"Ret":0,"ErrMsg":""},"Seq":0,"MemberCount":1,"MemberList":[{"Uin":0,"UserName":"@a","MemberList":[{"Uin":0,"KeyWord":""}]}]}"#
        );
    }
}
