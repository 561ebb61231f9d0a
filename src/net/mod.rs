//! Listeners and downstream connections.

mod listener;

pub use listener::bind_listeners;
