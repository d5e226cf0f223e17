//! The throw-away namespace world: the fixture of the namespace tests and of `netfailover lab`.

pub mod apps;
pub mod bench;
pub mod container;
pub mod hostile;
pub mod internet;
pub mod netns;
pub mod router;
pub mod soak;
pub mod timeline;
pub mod uplinks;
pub mod world;
