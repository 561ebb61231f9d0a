//! Listeners and downstream connections.

mod listener;
mod readable;

pub use listener::bind_listeners;
pub use readable::{peer_closed, read_when_readable};
