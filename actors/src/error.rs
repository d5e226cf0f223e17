//! The engine's errors, typed up to the edge: `EngineError` is what the engine API, the actors'
//! replies and the control backend return; it becomes text only where it is printed (the
//! daemon's control socket and CLI). `PortError` is what a port returns: what was attempted,
//! the kind the engine acts on, and the OS's own error as its `cause` (with the errno when
//! there is one).
//!
//! The rule for every error type of the workspace: the cause is either part of the error's
//! own text (`Display`) or returned by `source()`, never both, so a printed chain (`{:#}`,
//! anyhow) shows it once. The engine's errors end up as text in `status`, events and check
//! reasons, so they keep their cause in the text and `source()` returns nothing.

use std::sync::Arc;

use crate::actor_name::{unknown_actor_text, ActorName, Child, UnknownActorName};

/// The kinds of port failure the engine tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// The object already exists (netlink EEXIST).
    Exists,
    /// The object does not exist (netlink ESRCH/ENOENT, a missing interface or file).
    NotFound,
    /// A route's gateway is not reachable through its interface (netlink ENETUNREACH): the
    /// interface has no address on the gateway's subnet yet (a DHCP client still waiting for
    /// its lease). Not a failure to retry: the address's own notification brings the next try.
    Unreachable,
    /// Anything else: the source says what.
    Failed,
}

/// The cause of a port error, shared so the error stays `Clone` (actors keep and report it).
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Error from a port: what was attempted, its kind, and what the OS said (`cause`, in the
/// text and kept typed for [`PortError::errno`] and downcasts; not returned by `source()`, see
/// the module doc).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {}", describe(*kind, cause))]
pub struct PortError {
    pub kind: PortErrorKind,
    pub what: String,
    pub cause: Option<Source>,
}

fn describe(kind: PortErrorKind, cause: &Option<Source>) -> String {
    match (kind, cause) {
        (PortErrorKind::Exists, _) => "already exists".into(),
        (PortErrorKind::NotFound, _) => "not found".into(),
        (PortErrorKind::Unreachable, Some(source)) => {
            format!("gateway not reachable on the link yet ({source})")
        }
        (PortErrorKind::Unreachable, None) => "gateway not reachable on the link yet".into(),
        (PortErrorKind::Failed, Some(source)) => source.to_string(),
        (PortErrorKind::Failed, None) => "failed".into(),
    }
}

impl PortError {
    pub fn new(kind: PortErrorKind, what: impl Into<String>, cause: Option<Source>) -> Self {
        Self {
            kind,
            what: what.into(),
            cause,
        }
    }

    /// `what` already exists.
    pub fn exists(what: impl Into<String>) -> Self {
        Self::new(PortErrorKind::Exists, what, None)
    }

    /// `what` does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(PortErrorKind::NotFound, what, None)
    }

    /// `what` failed because of `cause` (an error, kept as the cause, or a plain message).
    pub fn failed(
        what: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::new(PortErrorKind::Failed, what, Some(Arc::from(cause.into())))
    }

    /// From an OS error: `AlreadyExists` and `NotFound` keep their kind, the errno stays in the
    /// cause.
    pub fn io(what: impl Into<String>, error: std::io::Error) -> Self {
        let kind = match error.kind() {
            std::io::ErrorKind::AlreadyExists => PortErrorKind::Exists,
            std::io::ErrorKind::NotFound => PortErrorKind::NotFound,
            _ => PortErrorKind::Failed,
        };
        Self::new(kind, what, Some(Arc::new(error)))
    }

    pub fn is(&self, kind: PortErrorKind) -> bool {
        self.kind == kind
    }

    /// The OS error number behind this error, if its cause (or the cause's source chain) holds
    /// one.
    pub fn errno(&self) -> Option<i32> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = self
            .cause
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        // Bounded: a source chain is a handful of links; 16 is far past any real one.
        for _ in 0..16 {
            let e = next?;
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if let Some(n) = io.raw_os_error() {
                    return Some(n);
                }
            }
            next = e.source();
        }
        None
    }
}

/// Equal when the kind, what and the cause's text are (causes are not comparable).
impl PartialEq for PortError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.what == other.what
            && self.cause.as_ref().map(|s| s.to_string())
                == other.cause.as_ref().map(|s| s.to_string())
    }
}

impl Eq for PortError {}

/// Errors of the engine API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("{actor} failed more than {intensity} times in {period_secs} s; giving up")]
    Escalated {
        actor: Child,
        intensity: u32,
        period_secs: u64,
    },
    /// The text lists every valid name ([`ActorName::choices`]).
    #[error("{}", unknown_actor_text(name))]
    UnknownActor { name: String },
    #[error("{actor} is not running right now (restarting?)")]
    Unavailable { actor: ActorName },
    #[error("cannot check {iface}: {reason}")]
    CannotCheck { iface: String, reason: String },
    #[error("the engine is not running")]
    Stopped,
}

impl From<UnknownActorName> for EngineError {
    fn from(e: UnknownActorName) -> Self {
        EngineError::UnknownActor { name: e.name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_errors_keep_kind_text_and_errno() {
        let e = PortError::io("route metric 100", std::io::Error::from_raw_os_error(17));
        assert_eq!((e.kind, e.errno()), (PortErrorKind::Exists, Some(17)));
        assert_eq!(e.to_string(), "route metric 100: already exists");
        let e = PortError::failed("sysctl x", std::io::Error::from_raw_os_error(13));
        assert_eq!((e.kind, e.errno()), (PortErrorKind::Failed, Some(13)));
        assert!(
            e.cause.is_some() && std::error::Error::source(&e).is_none(),
            "the OS error is the cause, in the text and not repeated by source()"
        );
        assert!(e.to_string().starts_with("sysctl x: "), "{e}");
        let e = PortError::failed("journal", "not valid JSON");
        assert_eq!(e.to_string(), "journal: not valid JSON");
        assert_eq!(e.errno(), None);
        assert_eq!(PortError::not_found("x"), PortError::not_found("x"));
        assert_ne!(PortError::not_found("x"), PortError::exists("x"));
    }
}
