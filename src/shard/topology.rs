//! CPU topology for shard placement: the CPUs this process may run on (its
//! affinity mask, which honours taskset, cgroups cpusets and systemd's
//! CPUAffinity), in order.

pub use core_affinity::CoreId;

/// The CPUs this process may run on; at least one entry.
pub fn allowed_cores() -> Vec<CoreId> {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => ids,
        _ => vec![CoreId { id: 0 }],
    }
}
