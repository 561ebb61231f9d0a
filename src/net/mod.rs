//! Listeners and downstream connections, plain or TLS.

mod client_stream;
mod listener;
mod readable;
mod server_tls;
mod tls_stream;

pub use client_stream::{ClientIo, ClientStream};
pub use listener::{bind_admin, bind_listeners, set_incoming_cpu, Listeners, PortClaim};
pub use readable::{peek, peer_closed, peer_gone, read_when_readable, Peeked};
pub use server_tls::{load_certified_key, server_config, ServerCert};
pub use tls_stream::TlsStream;
