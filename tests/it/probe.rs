//! Integration tests for the probe area.
