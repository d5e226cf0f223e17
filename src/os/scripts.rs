//! Placeholder: the scripts adapter lands with its issue.
