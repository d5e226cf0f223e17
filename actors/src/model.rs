//! Domain types shared by every actor and by the root crate: interface names, metrics,
//! connectivity states, link facts, kernel routes, dispatcher events, and the typed engine
//! [`Config`] that [`crate::run`] takes. The engine never reads files: the root crate's config
//! module builds a `Config` from the boot directory.
//!
//! One file per topic under `model/`; every type is re-exported here, so users name them
//! `crate::model::X` whatever file holds them.
//!
//! | topic | file |
//! |---|---|
//! | interface names | `model/iface.rs` |
//! | metrics, kinds of uplink | `model/metric.rs` |
//! | connectivity states | `model/connectivity.rs` |
//! | kernel facts (families, links, routes) | `model/link.rs` |
//! | dispatcher events | `model/event.rs` |
//! | the engine configuration | `model/config.rs` |

mod config;
mod connectivity;
mod event;
mod iface;
mod link;
mod metric;

pub use config::{
    CheckConfig, Config, DeviceEvents, DispatcherConfig, DnsConfig, FamilyConfig, FlowsConfig,
    IfaceAddr, IfaceMatch, MeteredConfig, Method, PassiveConfig, Profile, RecoveryConfig,
    RouteConfig, RpFilterPolicy, DEFAULT_ROUTE_PROTOCOL,
};
pub use connectivity::Connectivity;
pub use event::{BudgetInfo, Event, EventKind, RecoveryInfo};
pub use iface::{IfaceName, IfaceNameError, IFNAME_MAX};
pub use link::{Family, KernelRoute, LinkInfo, LinkKind, RTPROT_RA};
pub use metric::{Metered, Metric, MetricError, UplinkType, PENALTY_MAX};
