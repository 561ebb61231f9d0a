//! Listeners and downstream connections.

mod listener;
mod readable;

pub use listener::bind_listeners;
pub use readable::read_when_readable;
