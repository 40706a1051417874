//! wxbridge-fake: a strict fake of the WeChat web-protocol servers (login, API, push and
//! file roles on one `http://127.0.0.1:PORT` origin), for wxbridge's tests and benchmark.
//!
//! It is strict wherever the real server is (section numbers below refer to the project's
//! PROTOCOL.md): exact JS text, JSON as `text/plain` in the servers' layout and gzipped,
//! ids above 2^53, sessions checked on every call, a SyncKey that replays history when it is
//! stale. A test drives it through a
//! [`FakeWeChat`] handle.
//!
//! - [`FakeWeChat`] (in `control`) starts the server and is the test's remote control.
//! - [`Options`] holds hold times, paging and login modes.
//! - [`Msg`] builds inbound messages of every type; [`wx_escape`] is the server's escaping;
//!   [`wire_json`] the servers' JSON layout (one member per line, PROTOCOL.md §8.7); every
//!   answer's members come in the order the captured real answers have them.
//! - Every queued image, voice, video, emoticon and file message has bytes of its kind
//!   (`media`), served by the download endpoints of PROTOCOL.md §9.5. Uploads (§9.2) and
//!   media sends (§9.3) are accepted only as the official client makes them and recorded
//!   as [`Upload`]s and [`SentMedia`]; [`Violation`]s record the rules clients broke on the
//!   media endpoints.
//! - Like the real servers, every login after the first hands out new UserNames to the
//!   account, its contacts, groups and members (`renumber`, PROTOCOL.md §5.3); the old ones
//!   are refused. A test looks a contact up again with [`FakeWeChat::user_name_of`].
//! - `server` holds the endpoints; `state` the shared state and session rules;
//!   `contacts` the address book; `record` what the fake observed; `ids` id shapes;
//!   `escape` the server's text escaping.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod contacts;
mod control;
mod escape;
mod ids;
mod media;
mod msg;
mod options;
mod record;
mod renumber;
mod server;
mod state;
mod table;

pub use contacts::{ContactInfo, Details, GroupInfo};
pub use control::{captured_name, FakeWeChat, SessionInfo};
pub use escape::{emoji_span, wx_escape};
pub use msg::Msg;
pub use options::Options;
pub use record::{Fault, QueuedMsg, RequestRecord, SentMedia, SentMsg, Upload, Violation};
pub use server::{wire_json, EXTSPAM};
pub use table::TRANSPORT;
