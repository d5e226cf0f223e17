//! Integration tests: one binary, one module per area. Namespace tests create their own
//! namespaces (see `netfailover::lab::netns`) and fail under `CI=true` when they cannot.

mod agent;
mod config;
mod daemon;
mod dispatcher;
mod lab;
mod netlink;
mod passive;
mod probe;
mod semantics;
