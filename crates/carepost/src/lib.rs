//! The carepost binary's library half: configuration and the wiring of services. No business
//! rules live here; each room (smtp, delivery, policy, ...) owns its own.

pub mod config;
pub mod install;
pub mod intake;
pub mod jobs;
pub mod logging;
pub mod portal;
pub mod smtp;
pub mod tls;
pub mod web;

pub use config::Config;
pub use install::{Access, Installation};
