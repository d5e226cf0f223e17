//! Configuration: the boot directory (config.json, keyfiles, netfailover.toml + env) into one
//! validated engine `Config`. Placeholder until the configuration issue lands.
