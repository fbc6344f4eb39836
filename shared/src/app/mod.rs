//! Use cases. Each takes the context, decides, and asks the ports to persist atomically.

pub mod auth;
pub mod billing;
pub mod catalog;
mod context;
pub mod lifecycle;
pub mod notify;
pub mod outbox;
pub mod retry;
pub mod throttle;

pub use context::{AppContext, Stores};
