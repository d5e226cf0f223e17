//! Placeholder: the netlink adapter lands with its issue.
