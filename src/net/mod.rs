//! Listeners and downstream connections.
