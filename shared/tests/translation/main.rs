//! The translation layer against real services: the cache contract on both cache adapters
//! (in process and a real redis-server), Redis stopping and coming back, and the Amazon
//! Translate adapter and the tiered service against a local TranslateText server.

#[path = "../support/fake_translate.rs"]
mod fake_translate;
#[path = "../support/redis_server.rs"]
mod redis_server;

mod cache_contract;
mod redis_outage;
mod service;
