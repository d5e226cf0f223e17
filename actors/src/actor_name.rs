//! Actor names, as data: the top-level children of the tree ([`Child`]) and every name
//! `status` shows and `kill` takes ([`ActorName`]: a child, or the Prober of one interface).
//!
//! A name is parsed once, where it enters the engine (`EngineHandle::kill`); the supervisor
//! and ProbeScheduler match on the enum. The text of `EngineError::UnknownActor` lists the
//! names from here ([`ActorName::choices`]), so a new child is offered as soon as it exists.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::IfaceName;

/// The top-level children of the supervisor (`supervisor.rs` builds them).
///
/// The declaration order is the order `status` lists them in (the supervisor keeps its
/// children in a map by this order).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Child {
    FlowResetter,
    RouteManager,
    Dispatcher,
    ProbeScheduler,
    LinkWatcher,
    TrafficWatcher,
    RecoveryManager,
    Accountant,
}

impl Child {
    /// Start order: the consumer of route moves, then the writer of routes, the source of facts
    /// last; the recovery ladder after them (it asks RouteManager for the uplinks on start).
    pub const ALL: [Child; 8] = [
        Child::FlowResetter,
        Child::RouteManager,
        Child::Dispatcher,
        Child::ProbeScheduler,
        Child::LinkWatcher,
        Child::TrafficWatcher,
        Child::RecoveryManager,
        Child::Accountant,
    ];

    /// The order help texts and `UnknownActor` list them in: along the flow of facts, from the
    /// link source to the consumers (the wording the control protocol has always used).
    pub const LISTED: [Child; 8] = [
        Child::LinkWatcher,
        Child::RouteManager,
        Child::ProbeScheduler,
        Child::Dispatcher,
        Child::TrafficWatcher,
        Child::FlowResetter,
        Child::RecoveryManager,
        Child::Accountant,
    ];

    /// The child's name in `status` and `kill`.
    pub fn name(self) -> &'static str {
        match self {
            Child::FlowResetter => "flow-resetter",
            Child::RouteManager => "route-manager",
            Child::Dispatcher => "dispatcher",
            Child::ProbeScheduler => "probe-scheduler",
            Child::LinkWatcher => "link-watcher",
            Child::TrafficWatcher => "traffic-watcher",
            Child::RecoveryManager => "recovery-manager",
            Child::Accountant => "accountant",
        }
    }
}

impl fmt::Display for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The prefix of a Prober's name: `prober:IFACE`.
pub const PROBER_PREFIX: &str = "prober:";

/// An actor of the tree by its `status` name. Serialised as that name (`"dispatcher"`,
/// `"prober:wwan0"`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ActorName {
    /// A top-level child of the supervisor.
    Child(Child),
    /// The Prober of one interface (a child of ProbeScheduler).
    Prober(IfaceName),
}

impl ActorName {
    /// Every name `kill` accepts, as help texts list them:
    /// `link-watcher, route-manager, …, prober:IFACE`.
    pub fn choices() -> String {
        let mut names: Vec<&str> = Child::LISTED.iter().map(|c| c.name()).collect();
        let prober = format!("{PROBER_PREFIX}IFACE");
        names.push(&prober);
        names.join(", ")
    }
}

/// No actor has this name; the text lists every valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", unknown_actor_text(name))]
pub struct UnknownActorName {
    pub name: String,
}

/// The text of an unknown name, here and in `EngineError::UnknownActor`.
pub fn unknown_actor_text(name: &str) -> String {
    format!("no actor named {name:?} (try {})", ActorName::choices())
}

impl FromStr for ActorName {
    type Err = UnknownActorName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownActorName { name: s.into() };
        if let Some(iface) = s.strip_prefix(PROBER_PREFIX) {
            return IfaceName::new(iface)
                .map(ActorName::Prober)
                .map_err(|_| unknown());
        }
        Child::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .map(ActorName::Child)
            .ok_or_else(unknown)
    }
}

impl fmt::Display for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorName::Child(c) => f.write_str(c.name()),
            ActorName::Prober(iface) => write!(f, "{PROBER_PREFIX}{iface}"),
        }
    }
}

/// A name compares equal to its text (`actor == "route-manager"`).
impl PartialEq<str> for Child {
    fn eq(&self, other: &str) -> bool {
        self.name() == other
    }
}

/// A name compares equal to its text (`actor == "prober:wwan0"`).
impl PartialEq<str> for ActorName {
    fn eq(&self, other: &str) -> bool {
        match self {
            ActorName::Child(c) => c.name() == other,
            ActorName::Prober(iface) => other
                .strip_prefix(PROBER_PREFIX)
                .is_some_and(|i| i == iface.as_str()),
        }
    }
}

impl From<Child> for ActorName {
    fn from(c: Child) -> Self {
        ActorName::Child(c)
    }
}

impl From<ActorName> for String {
    fn from(n: ActorName) -> Self {
        n.to_string()
    }
}

impl TryFrom<String> for ActorName {
    type Error = UnknownActorName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What names an actor in the engine API: an [`ActorName`], or its text, parsed here once.
pub trait ToActorName {
    fn to_actor_name(self) -> Result<ActorName, UnknownActorName>;
}

impl ToActorName for ActorName {
    fn to_actor_name(self) -> Result<ActorName, UnknownActorName> {
        Ok(self)
    }
}

impl ToActorName for Child {
    fn to_actor_name(self) -> Result<ActorName, UnknownActorName> {
        Ok(ActorName::Child(self))
    }
}

impl ToActorName for &str {
    fn to_actor_name(self) -> Result<ActorName, UnknownActorName> {
        self.parse()
    }
}

impl ToActorName for &String {
    fn to_actor_name(self) -> Result<ActorName, UnknownActorName> {
        self.parse()
    }
}

impl ToActorName for String {
    fn to_actor_name(self) -> Result<ActorName, UnknownActorName> {
        self.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for child in Child::ALL {
            let name: ActorName = child.name().parse().unwrap();
            assert_eq!(name, ActorName::Child(child));
            assert_eq!(name.to_string(), child.name());
        }
        let prober: ActorName = "prober:wwan0".parse().unwrap();
        assert_eq!(prober, ActorName::Prober(IfaceName::new("wwan0").unwrap()));
        assert_eq!(prober.to_string(), "prober:wwan0");
        assert_eq!(serde_json::to_string(&prober).unwrap(), "\"prober:wwan0\"");
        for bad in ["x", "prober:", "prober:a/b", "Dispatcher", ""] {
            let err = bad.parse::<ActorName>().unwrap_err();
            assert_eq!(err.name, bad);
            assert_eq!(
                err.to_string(),
                format!(
                    "no actor named {bad:?} (try link-watcher, route-manager, probe-scheduler, \
                     dispatcher, traffic-watcher, flow-resetter, recovery-manager, accountant, prober:IFACE)"
                )
            );
        }
    }
}
