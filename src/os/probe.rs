//! Placeholder: the probe adapter lands with its issue.
