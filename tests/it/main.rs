//! Scenario tests: the real `wxbridge` binary against the fake WeChat server. One test crate
//! with modules, so the suite links once.
mod brokers;
mod bus;
mod cli;
mod control;
mod faults;
mod homeassistant;
mod hostile;
mod http;
mod login;
mod messages;
mod mqtt;
mod nats;
mod schema;
mod secrets;
mod send;
mod session;
mod status_page;
mod support;
mod tls;
mod watch;
mod webhook;
mod wire;
