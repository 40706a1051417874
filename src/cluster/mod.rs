//! Cluster mode (DESIGN.md "Cluster mode"): several nodes sharing the accounts over NATS JetStream.
pub mod seal;
