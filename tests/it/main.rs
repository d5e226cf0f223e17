//! Integration tests: one binary, one module per area. Namespace tests create their own
//! namespaces (see `netfailover::lab::netns`) and fail under `CI=true` when they cannot.

mod agent;
mod chaos;
mod config;
mod daemon;
mod dispatcher;
mod faults;
mod flows;
mod hostile;
mod lab;
mod netlink;
mod passive;
mod probe;
mod semantics;
