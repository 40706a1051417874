//! Where events go and commands come from. With no sink configured, the embedded default is
//! [`stdio`]: events as JSON lines on stdout, commands as JSON lines on stdin.
pub mod stdio;
