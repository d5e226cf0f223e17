//! The engine's errors, typed up to the edge: `EngineError` is what the engine API, the actors'
//! replies and the control backend return; it becomes text only where it is printed (the
//! daemon's control socket and CLI). The ports' own error (`PortError`) lives with the ports.

/// Errors of the engine API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("{actor} failed more than {intensity} times in {period_secs} s; giving up")]
    Escalated {
        actor: String,
        intensity: u32,
        period_secs: u64,
    },
    #[error("no actor named {name:?} (try link-watcher, route-manager, probe-scheduler, dispatcher, traffic-watcher, flow-resetter, prober:IFACE)")]
    UnknownActor { name: String },
    #[error("{actor} is not running right now (restarting?)")]
    Unavailable { actor: String },
    #[error("cannot check {iface}: {reason}")]
    CannotCheck { iface: String, reason: String },
    #[error("the engine is not running")]
    Stopped,
}
