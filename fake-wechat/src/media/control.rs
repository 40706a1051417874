//! The test's controls over media: the bytes a download serves, expiry, a stalled or slow
//! body, download counts, and the strictness violations the media endpoints recorded.

use std::time::Duration;

use super::Variant;
use crate::record::{SentMedia, Upload, Violation};
use crate::FakeWeChat;

impl FakeWeChat {
    /// The bytes a download of message `msg_id` (its MsgId or NewMsgId) serves: the full
    /// image, voice, video, emoticon or file, exactly as a correct client must store them.
    /// `None` for a message without media.
    pub fn media_bytes(&self, msg_id: &str) -> Option<Vec<u8>> {
        let id = self.shared.lock().media.msg_id(msg_id)?;
        super::bytes(&self.shared, &id, Variant::Full).map(|b| b.to_vec())
    }

    /// WeChat no longer has this message's media (it keeps media for a limited time): from
    /// now on its download answers as the real servers do for such media, `200` with an
    /// empty body (`Content-Length: 0`), the same answer clients report for media the
    /// servers will not serve (ItChat#375, #454; wxBot#283). A client should report it as
    /// expired rather than store an empty file.
    pub fn expire_media(&self, msg_id: &str) {
        self.shared.update(|st| {
            if let Some(id) = st.media.msg_id(msg_id) {
                if let Some(item) = st.media.get_mut(&id) {
                    item.expired = true;
                }
            }
        });
    }

    /// Every download's body sends its first part (at most half of it), then stalls this
    /// long before the rest, so a test can stop a client in the middle of a download.
    /// Zero (the default) turns it off.
    pub fn set_media_delay(&self, delay: Duration) {
        self.shared.update(|st| st.media_delay = delay);
    }

    /// Downloads send at most this many bytes a second; 0 (the default) is unlimited.
    pub fn set_media_rate(&self, bytes_per_sec: u64) {
        self.shared
            .update(|st| st.media_rate = (bytes_per_sec > 0).then_some(bytes_per_sec));
    }

    /// How many downloads of message `msg_id` began sending bytes (empty answers, such as
    /// for expired media, are not counted).
    pub fn downloads(&self, msg_id: &str) -> usize {
        self.count(msg_id, |i| i.started)
    }

    /// How many downloads of message `msg_id` sent their whole body.
    pub fn downloads_completed(&self, msg_id: &str) -> usize {
        self.count(msg_id, |i| i.completed)
    }

    fn count(&self, msg_id: &str, f: impl Fn(&super::Item) -> usize) -> usize {
        let st = self.shared.lock();
        st.media
            .msg_id(msg_id)
            .and_then(|id| st.media.get(&id).map(f))
            .unwrap_or(0)
    }

    /// Every upload the fake accepted (all chunks in, md5 right), oldest first.
    pub fn uploads(&self) -> Vec<Upload> {
        self.shared.lock().outbox.uploads.clone()
    }

    /// The bytes an upload delivered, by its MediaId.
    pub fn upload_bytes(&self, media_id: &str) -> Option<Vec<u8>> {
        let st = self.shared.lock();
        st.outbox
            .by_media_id
            .get(media_id)
            .map(|(_, _, bytes)| bytes.to_vec())
    }

    /// The media sends the fake accepted (images, videos, files, emoticons), in order. Text
    /// sends are in [`FakeWeChat::sent`]; `fail_sends` counts both.
    pub fn sent_media(&self) -> Vec<SentMedia> {
        self.shared.lock().outbox.sent.clone()
    }

    /// Waits until at least `n` media sends were accepted or `timeout` passed; returns them.
    pub async fn wait_sent_media(&self, n: usize, timeout: Duration) -> Vec<SentMedia> {
        self.shared
            .wait_for(timeout, |st| (st.outbox.sent.len() >= n).then_some(()))
            .await;
        self.sent_media()
    }

    /// The rules clients broke, oldest first: on the media endpoints (downloads, uploads, media
    /// sends), and of the official client's requests (the request table, see
    /// [`Options::check_requests`](crate::Options::check_requests)). Each broken call was also answered as the real servers answer it; a
    /// test of a conforming client asserts this is empty.
    pub fn violations(&self) -> Vec<Violation> {
        self.shared.lock().violations.clone()
    }
}
