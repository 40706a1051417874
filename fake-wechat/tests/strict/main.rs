//! The fake drives like the real server: a correct client gets through, and a client that
//! breaks one protocol rule is refused. Each test breaks one rule.

mod api;
mod captured;
mod distance;
mod login;
mod media;
mod renumber;
mod support;
mod sync;
mod table;
mod upload;
mod wire;
