//! The WeChat web protocol: pure parsing in [`protocol`], [`hosts`], [`message`],
//! [`contacts`], [`keys`] (contact keys that outlive a login), [`compact`] and [`text`] (the cleaning messages and names share); HTTP I/O in
//! [`client`]; the login flows in [`login`]; the live session and its persistence in
//! [`session`]; [`cause`] tells a failed request's causes with secrets masked. Nothing here knows of MQTT, NATS or webhooks.
pub mod cause;
pub mod client;
pub mod compact;
pub mod contacts;
pub mod hosts;
pub mod keys;
pub mod login;
pub mod message;
pub mod protocol;
pub mod requests;
pub mod session;
pub mod text;

#[cfg(test)]
mod corpus_replay;
