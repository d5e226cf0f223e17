//! Placeholder: the persist adapter lands with its issue.
