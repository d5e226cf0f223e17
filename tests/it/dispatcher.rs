//! Integration tests for the dispatcher area.
