//! wxbridge: WeChat (web protocol) bridged to message buses.
//!
//! A message's way: **in** by [`bridge`]'s sync loop (webwxsync, [`wechat::message::normalize`]);
//! **stored** in the [`spool`] with the answer's sync keys, durable before the next sync;
//! **out** by each sink's [`sinks::run_delivery`], whose cursor moves once the bus confirms it.
//!
//! - [`wechat`] speaks the WeChat web protocol and knows nothing of buses.
//! - [`event`] is the JSON the bus carries: inbound events, send commands, results.
//! - [`bridge`] wires the two: login policy, the sync loop, the outbound queue and limiter.
//! - [`sinks`] are where events go and commands come from (stdio is the embedded default).
//! - [`config`] is the typed, strict configuration and its loader.
//! - [`media`] is the content-addressed store of media files and the signer of their URLs.
//! - [`http`] is the HTTP API and the status page; [`metrics`] the Prometheus metrics it serves.
//! - [`app`] builds `run`'s topology from the config, starts it and drains it at the end.
//! - [`cli`], [`commands`] (the one-shot subcommands), [`logging`], [`signal`] and [`migrate`]
//!   (a single-account state dir moved for `accounts:`) make up the binary; [`lock`], [`qr`]
//!   and [`limiter`] are small parts they share.
//! - [`cluster`] holds the leases by which several nodes share the accounts and the sealing of
//!   the secrets they share (not wired yet).
#![forbid(unsafe_code)]

pub mod app;
pub mod bridge;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod event;
pub mod http;
pub mod limiter;
pub mod lock;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod migrate;
pub mod qr;
pub mod retry;
pub mod signal;
pub mod sinks;
pub mod spool;
pub mod wechat;
