//! The media the fake holds: every queued image, voice, video, emoticon and file message
//! gets bytes (made lazily by [`make`], deterministic per MsgId), found by MsgId for
//! `webwxgetmsgimg`/`webwxgetvoice`/`webwxgetvideo` and by MediaId for `webwxgetmedia`
//! (PROTOCOL.md §9.5), with the counters and switches a test reads and sets.

mod control;
pub(crate) mod make;
pub(crate) mod outbox;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

/// What a media message holds, as its MsgType (and AppMsgType) says (§8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// 3
    Image,
    /// 34
    Voice,
    /// 43 and 62
    Video,
    /// 47
    Emoticon,
    /// 49 with AppMsgType 6
    File,
}

impl Kind {
    /// The kind of an AddMsgList entry, if it carries media.
    fn of(entry: &Value) -> Option<Kind> {
        match entry["MsgType"].as_u64()? {
            3 => Some(Kind::Image),
            34 => Some(Kind::Voice),
            43 | 62 => Some(Kind::Video),
            47 => Some(Kind::Emoticon),
            49 if entry["AppMsgType"].as_u64() == Some(6) => Some(Kind::File),
            _ => None,
        }
    }
}

/// One message's media.
#[derive(Debug)]
pub(crate) struct Item {
    pub kind: Kind,
    /// FromUserName: `webwxgetmedia`'s `sender`.
    pub from: String,
    /// FileName (files).
    pub file_name: String,
    /// EncryFileName as the entry carries it (percent-encoded).
    pub encry_file_name: String,
    seed: u64,
    width: u32,
    height: u32,
    duration_ms: u64,
    len: Option<u64>,
    /// A store sticker (HasProductId 1): the servers give no bytes for it (ItChat#375, #454:
    /// "copyrighted" stickers download empty).
    pub no_bytes: bool,
    bytes: Option<Arc<Vec<u8>>>,
    thumb: Option<Arc<Vec<u8>>>,
    /// Set by `expire_media`: answered like media the servers no longer have.
    pub expired: bool,
    /// Body sends begun and finished, for `downloads`.
    pub started: usize,
    pub completed: usize,
}

/// Which bytes of an item a download asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    Full,
    /// `webwxgetmsgimg?type=slave`: the thumbnail.
    Thumb,
}

impl Item {
    fn new(kind: Kind, entry: &Value, len: Option<u64>) -> Item {
        let num = |k: &str| entry[k].as_u64().unwrap_or(0);
        let text = |k: &str| entry[k].as_str().unwrap_or("").to_owned();
        let msg_id = text("MsgId");
        let (mut width, mut height) = (num("ImgWidth") as u32, num("ImgHeight") as u32);
        if width == 0 || height == 0 {
            (width, height) = match kind {
                Kind::Emoticon => (240, 240),
                _ => (90, 120),
            };
        }
        let len = match kind {
            Kind::File => len.or_else(|| entry["FileSize"].as_str()?.parse().ok()),
            _ => len,
        };
        Item {
            kind,
            from: text("FromUserName"),
            file_name: text("FileName"),
            encry_file_name: text("EncryFileName"),
            seed: make::seed(&msg_id),
            width,
            height,
            duration_ms: num("VoiceLength"),
            len,
            no_bytes: kind == Kind::Emoticon && num("HasProductId") == 1,
            bytes: None,
            thumb: None,
            expired: false,
            started: 0,
            completed: 0,
        }
    }

    /// The bytes, if already made.
    pub fn cached(&self, variant: Variant) -> Option<Arc<Vec<u8>>> {
        match variant {
            Variant::Full => self.bytes.clone(),
            Variant::Thumb => self.thumb.clone(),
        }
    }

    /// What [`Item::make`] needs, so the bytes can be made outside the state's lock.
    pub fn recipe(&self, variant: Variant) -> Recipe {
        Recipe {
            kind: self.kind,
            variant,
            seed: self.seed,
            width: self.width,
            height: self.height,
            duration_ms: self.duration_ms,
            len: self.len,
            name: self.file_name.clone(),
        }
    }

    /// Keeps made bytes (the first made wins, so every download sees the same bytes).
    pub fn keep(&mut self, variant: Variant, bytes: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        let slot = match variant {
            Variant::Full => &mut self.bytes,
            Variant::Thumb => &mut self.thumb,
        };
        slot.get_or_insert(bytes).clone()
    }
}

/// Everything needed to make an item's bytes.
pub(crate) struct Recipe {
    kind: Kind,
    variant: Variant,
    seed: u64,
    width: u32,
    height: u32,
    duration_ms: u64,
    len: Option<u64>,
    name: String,
}

impl Recipe {
    pub fn make(&self) -> Vec<u8> {
        let s = self.seed;
        match (self.kind, self.variant) {
            // The thumbnail: at most 120 pixels a side, as the servers' `slave` images are
            // small previews [U: exact size].
            (Kind::Image, Variant::Thumb) => {
                let scale = (self.width.max(self.height) as f64 / 120.0).max(1.0);
                let (w, h) = (
                    (self.width as f64 / scale) as u32,
                    (self.height as f64 / scale) as u32,
                );
                make::jpeg(s ^ 0x0074_6875_6d62, w.max(1), h.max(1), None)
            }
            (Kind::Image, Variant::Full) => make::jpeg(s, self.width, self.height, self.len),
            (Kind::Emoticon, _) => make::gif(s, self.width, self.height, self.len),
            (Kind::Voice, _) => make::mp3(s, self.duration_ms, self.len),
            (Kind::Video, _) => make::mp4(s, self.len),
            (Kind::File, _) => make::file(s, &self.name, self.len.unwrap_or(0)),
        }
    }
}

/// Every media message queued, by MsgId (and NewMsgId and MediaId where they differ).
#[derive(Debug, Default)]
pub(crate) struct Library {
    items: HashMap<String, Item>,
    /// NewMsgId (as text) → MsgId, where they differ (a replayed capture).
    by_new_id: HashMap<String, String>,
    /// MediaId → MsgId, for files.
    by_media_id: HashMap<String, String>,
}

impl Library {
    /// Registers a queued entry's media, if it has any; `len` is `Msg::media_len`.
    pub fn register(&mut self, entry: &Value, len: Option<u64>) {
        let Some(kind) = Kind::of(entry) else {
            return;
        };
        let Some(msg_id) = entry["MsgId"].as_str().map(str::to_owned) else {
            return;
        };
        let new_id = match &entry["NewMsgId"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => String::new(),
        };
        if !new_id.is_empty() && new_id != msg_id {
            self.by_new_id.insert(new_id, msg_id.clone());
        }
        if let Some(media_id) = entry["MediaId"].as_str().filter(|m| !m.is_empty()) {
            if kind == Kind::File {
                self.by_media_id.insert(media_id.to_owned(), msg_id.clone());
            }
        }
        self.items.insert(msg_id, Item::new(kind, entry, len));
    }

    /// Registers an entry whose bytes are given (the echo of a sent upload).
    pub fn register_bytes(&mut self, entry: &Value, bytes: Arc<Vec<u8>>) {
        self.register(entry, Some(bytes.len() as u64));
        if let Some(item) = entry["MsgId"]
            .as_str()
            .and_then(|id| self.items.get_mut(id))
        {
            item.keep(Variant::Full, bytes);
        }
    }

    /// The MsgId an id names: a MsgId, or a NewMsgId (itchat sends that one).
    pub fn msg_id(&self, id: &str) -> Option<String> {
        if self.items.contains_key(id) {
            return Some(id.to_owned());
        }
        self.by_new_id.get(id).cloned()
    }

    /// The MsgId of the file whose MediaId is `media_id`.
    pub fn by_media_id(&self, media_id: &str) -> Option<String> {
        self.by_media_id.get(media_id).cloned()
    }

    pub fn get(&self, msg_id: &str) -> Option<&Item> {
        self.items.get(msg_id)
    }

    pub fn get_mut(&mut self, msg_id: &str) -> Option<&mut Item> {
        self.items.get_mut(msg_id)
    }

    /// A login handed out new UserNames (old → new): a download's `sender` is the new one.
    pub fn rename_senders(&mut self, map: &HashMap<String, String>) {
        for item in self.items.values_mut() {
            if let Some(fresh) = map.get(&item.from) {
                item.from.clone_from(fresh);
            }
        }
    }
}

/// An item's bytes, made outside the state's lock the first time they are asked for.
pub(crate) fn bytes(
    shared: &crate::state::Shared,
    msg_id: &str,
    variant: Variant,
) -> Option<Arc<Vec<u8>>> {
    let recipe = {
        let st = shared.lock();
        let item = st.media.get(msg_id)?;
        if let Some(b) = item.cached(variant) {
            return Some(b);
        }
        item.recipe(variant)
    };
    let made = Arc::new(recipe.make());
    let mut st = shared.lock();
    Some(st.media.get_mut(msg_id)?.keep(variant, made))
}
