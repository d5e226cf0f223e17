//! Integration tests for the config area.
