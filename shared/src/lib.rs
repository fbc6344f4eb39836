//! The common crate of the Stark platform: domain, use cases, ports, adapters and the HTTP
//! layer shared by every Lambda and by the local `stark` binary.

pub mod adapters;
pub mod app;
pub mod clock;
pub mod config;
pub mod domain;
pub mod email;
pub mod http;
pub mod i18n;
pub mod lambda;
pub mod local;
pub mod logs;
pub mod ports;
pub mod security;
pub mod timing;
