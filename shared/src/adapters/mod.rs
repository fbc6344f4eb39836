//! Adapters: one module per technology. Which ones run is decided by configuration
//! (`config.rs`), never by `cfg` flags.

pub mod sqlite;
