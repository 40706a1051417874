//! Scenario tests: the real `wxbridge` binary against the fake WeChat server. One test crate
//! with modules, so the suite links once.
mod brokers;
mod bus;
mod cli;
mod control;
mod deploy;
mod faults;
mod homeassistant;
mod hostile;
mod http;
mod http_access;
mod http_limits;
mod login;
mod messages;
mod mqtt;
mod nats;
mod replies;
mod schema;
mod secrets;
mod send;
mod session;
mod status_page;
mod support;
mod tls;
mod watch;
mod webhook;
