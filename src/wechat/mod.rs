//! The WeChat web protocol: pure parsing in [`protocol`], [`hosts`], [`message`],
//! [`contacts`] and [`compact`]; HTTP I/O in [`client`]; the login flows in [`login`]; the
//! live session and its persistence in [`session`]; [`cause`] tells a failed request's causes
//! with secrets masked. Nothing here knows of MQTT, NATS or webhooks.
pub mod cause;
pub mod client;
pub mod compact;
pub mod contacts;
pub mod hosts;
pub mod login;
pub mod message;
pub mod protocol;
pub mod session;

#[cfg(test)]
mod corpus_replay;
