//! Which PUBACK confirms which publish. rumqttc has no such mapping (`bytebeamio/rumqtt#349`,
//! CRATES.md §1.4); what it does give, in order, is `Outgoing::Publish(pkid)` when a publish is
//! written and `Incoming::PubAck(pkid)` / `PubComp(pkid)` when the broker takes it.
//!
//! The pairing rests on one invariant: every publish goes through the gate (`link::Gate`),
//! which pushes its [`Tag`] onto the shared [`Unwritten`] queue and hands the publish to the
//! client in one turn (the accounts' link tasks take turns at it), so the queue's order is the
//! request channel's order. The poller pops the front tag for each *new*
//! publish written, files it under the pkid, and resolves it on the ack. Not new are:
//! - re-sends after a reconnect that resumed the session: rumqttc moves unacked publishes to
//!   its `pending` queue with their pkids and writes them again; their pkids are known
//!   ([`Tracker::disconnected`] reads them from `pending`);
//! - the publish held back on a pkid collision (`Outgoing::AwaitAck`), written later under the
//!   same pkid once that pkid is acked.
//!
//! A reconnect that finds no session makes rumqttc drop `pending`: the unacked publishes and
//! the requests it had drained from the channel at the disconnect. Those drained ones are the
//! oldest unwritten tags, so the tracker drops that many from the front. This module does no
//! I/O; the poller feeds it.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use rumqttc::Request;

/// What a publish was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    /// A retained status, state or QR publish: nobody waits for its ack.
    Control,
    /// Entry `index` of delivery batch `batch` of the account at position `lane`.
    Entry {
        /// The account's position in the link's list.
        lane: usize,
        /// The batch's number.
        batch: u64,
        /// The entry's position in the batch.
        index: usize,
    },
    /// The bytes of a file an event refers to; the event waits for this one's ack.
    Media {
        /// The account's position in the link's list.
        lane: usize,
        /// Numbered by the account's link task, one after the other.
        id: u64,
    },
}

/// Tags of publishes handed to the client but not yet written, oldest first.
pub(super) type Unwritten = Arc<Mutex<VecDeque<Tag>>>;

/// The poller's side of the pairing.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    unwritten: Unwritten,
    /// Written QoS ≥ 1 publishes awaiting their ack.
    inflight: HashMap<u16, Tag>,
    /// Pkids rumqttc will write again after a resumed session.
    resend: HashSet<u16>,
    /// A publish held back by a pkid collision.
    collided: Option<(u16, Tag)>,
    /// How many of the oldest unwritten tags sit in rumqttc's `pending` (drained from the
    /// channel at the last disconnect): lost if the next session is new.
    drained: usize,
}

impl Tracker {
    /// A tracker reading tags from `unwritten`.
    pub fn new(unwritten: Unwritten) -> Tracker {
        Tracker {
            unwritten,
            ..Tracker::default()
        }
    }

    fn pop_unwritten(&self) -> Option<Tag> {
        let tag = self
            .unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        if tag.is_none() {
            tracing::debug!("a publish was written that no tag accounts for");
        }
        tag
    }

    /// `Outgoing::Publish(pkid)`. Returns the tag when the publish is thereby done (QoS 0).
    pub fn written(&mut self, pkid: u16) -> Option<Tag> {
        if pkid == 0 {
            return self.pop_unwritten();
        }
        if self.resend.remove(&pkid) {
            return None;
        }
        if let Some((held, tag)) = self.collided {
            if held == pkid {
                self.collided = None;
                self.inflight.insert(pkid, tag);
                return None;
            }
        }
        if let Some(tag) = self.pop_unwritten() {
            self.inflight.insert(pkid, tag);
        }
        None
    }

    /// `Outgoing::AwaitAck(pkid)`: the next new publish collided with an unacked pkid and waits.
    pub fn collided(&mut self, pkid: u16) {
        if let Some(tag) = self.pop_unwritten() {
            self.collided = Some((pkid, tag));
        }
    }

    /// `Incoming::PubAck(pkid)` (QoS 1) or `Incoming::PubComp(pkid)` (QoS 2).
    pub fn acked(&mut self, pkid: u16) -> Option<Tag> {
        self.inflight.remove(&pkid)
    }

    /// The connection broke; `pending` is rumqttc's queue of what it will write after the
    /// reconnect, read after every failed poll (it changes only inside `poll`).
    pub fn disconnected<'a>(&mut self, pending: impl IntoIterator<Item = &'a Request>) {
        self.resend.clear();
        self.drained = 0;
        for request in pending {
            if let Request::Publish(p) = request {
                if p.pkid == 0 {
                    self.drained += 1;
                } else {
                    self.resend.insert(p.pkid);
                }
            }
        }
    }

    /// A ConnAck. Without a session, rumqttc dropped `pending`: forget it here too, and return
    /// the tags lost with it.
    pub fn connected(&mut self, session_present: bool) -> Vec<Tag> {
        let drained = std::mem::take(&mut self.drained);
        if session_present {
            return Vec::new();
        }
        self.resend.clear();
        let mut lost: Vec<Tag> = self.inflight.drain().map(|(_, tag)| tag).collect();
        lost.extend(self.collided.take().map(|(_, tag)| tag));
        let mut unwritten = self.unwritten.lock().unwrap_or_else(|e| e.into_inner());
        let n = drained.min(unwritten.len());
        lost.extend(unwritten.drain(..n));
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{Publish, QoS};

    fn entry(index: usize) -> Tag {
        Tag::Entry {
            lane: 0,
            batch: 1,
            index,
        }
    }

    fn tracker(tags: &[Tag]) -> (Tracker, Unwritten) {
        let unwritten: Unwritten = Arc::default();
        unwritten.lock().unwrap().extend(tags.iter().copied());
        (Tracker::new(unwritten.clone()), unwritten)
    }

    fn publish(pkid: u16) -> Request {
        let mut p = Publish::new("t", QoS::AtLeastOnce, "x");
        p.pkid = pkid;
        Request::Publish(p)
    }

    #[test]
    fn acks_resolve_the_publish_written_under_their_pkid() {
        let (mut t, _) = tracker(&[Tag::Control, entry(0), entry(1)]);
        assert_eq!(t.written(1), None);
        assert_eq!(t.written(2), None);
        assert_eq!(t.written(3), None);
        assert_eq!(t.acked(3), Some(entry(1)));
        assert_eq!(t.acked(1), Some(Tag::Control));
        assert_eq!(t.acked(2), Some(entry(0)));
        assert_eq!(t.acked(2), None, "an ack counts once");
    }

    #[test]
    fn qos0_publishes_are_done_once_written() {
        let (mut t, _) = tracker(&[entry(0), entry(1)]);
        assert_eq!(t.written(0), Some(entry(0)));
        assert_eq!(t.written(0), Some(entry(1)));
        assert_eq!(t.written(0), None);
    }

    #[test]
    fn resends_after_a_resumed_session_take_no_new_tag() {
        let (mut t, unwritten) = tracker(&[entry(0), entry(1)]);
        t.written(1);
        // The connection drops with entry 0 unacked and entry 1 drained from the channel.
        t.disconnected(&[publish(1), publish(0)]);
        assert!(t.connected(true).is_empty());
        unwritten.lock().unwrap().push_back(entry(2));
        t.written(1); // entry 0 again
        t.written(2); // entry 1, new
        t.written(3); // entry 2, new
        assert_eq!(t.acked(1), Some(entry(0)));
        assert_eq!(t.acked(2), Some(entry(1)));
        assert_eq!(t.acked(3), Some(entry(2)));
    }

    #[test]
    fn a_new_session_loses_the_unacked_and_the_drained_but_not_later_requests() {
        let (mut t, unwritten) = tracker(&[entry(0), entry(1), entry(2)]);
        t.written(1);
        t.disconnected(&[publish(1), publish(0)]);
        // Entry 2 reached the channel after the drain; it is still written after the reconnect.
        let mut lost = t.connected(false);
        lost.sort_by_key(|t| match t {
            Tag::Entry { index, .. } => *index,
            Tag::Control | Tag::Media { .. } => usize::MAX,
        });
        assert_eq!(lost, [entry(0), entry(1)]);
        assert_eq!(unwritten.lock().unwrap().len(), 1);
        t.written(1);
        assert_eq!(t.acked(1), Some(entry(2)));
    }

    #[test]
    fn a_collided_publish_is_filed_when_it_is_finally_written() {
        let (mut t, _) = tracker(&[entry(0), entry(1), entry(2)]);
        t.written(1);
        t.written(2);
        t.collided(1); // entry 2 got pkid 1, which is still unacked
        assert_eq!(t.acked(1), Some(entry(0)));
        t.written(1); // now entry 2 goes out
        assert_eq!(t.acked(2), Some(entry(1)));
        assert_eq!(t.acked(1), Some(entry(2)));
    }
}
