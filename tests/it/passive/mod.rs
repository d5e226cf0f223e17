//! Passive health against the real kernel: the traffic adapter alone (`adapter`), in
//! namespaces the tests create, on documentation addresses only.

mod adapter;
