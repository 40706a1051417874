//! Scenario tests: the real `wxbridge` binary against the fake WeChat server. One test crate
//! with modules, so the suite links once.
mod login;
mod messages;
mod send;
mod session;
mod support;
