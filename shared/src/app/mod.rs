//! Use cases. Each takes the context, decides, and asks the ports to persist atomically.

pub mod auth;
mod context;
pub mod throttle;

pub use context::{AppContext, Stores};
