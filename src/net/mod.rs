//! Listeners and downstream connections.

mod client_stream;
mod listener;
mod readable;

pub use client_stream::ClientStream;
pub use listener::{bind_admin, bind_listeners, Listeners, PortClaim};
pub use readable::{peek, peer_closed, peer_gone, read_when_readable, Peeked};
