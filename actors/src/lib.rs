//! netfailover's engine (actor map and `run()` are documented here once the actors land).

pub mod model;
pub mod ports;
pub mod status;
