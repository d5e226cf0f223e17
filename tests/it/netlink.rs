//! Integration tests for the netlink area.
