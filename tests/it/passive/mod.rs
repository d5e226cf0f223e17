//! Passive health against the real kernel: the traffic adapter alone (`adapter`), then the
//! daemon in the lab world with application traffic (`daemon`), in namespaces the tests
//! create, on documentation addresses only.

mod adapter;
mod daemon;
mod flows;
