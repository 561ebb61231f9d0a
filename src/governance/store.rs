//! The local backend's store: the table's records and ledgers as one JSON
//! file under `state.dir`, replaced atomically (written beside, synced,
//! renamed, the directory synced), by a thread of its own at most one
//! flush interval after a change. A clean stop writes once more, so it
//! loses nothing; a SIGKILL loses at most the last interval's changes.
//!
//! Invariants: the file on disk is always a whole snapshot (the old or the
//! new one, never a torn one); the shards never wait on it: they only
//! touch ledgers, which the writer locks one at a time to copy.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::table::StoredState;
use super::Governance;
use crate::telemetry::log_error;

const FILE: &str = "governance.json";

/// The state directory's store.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir`, which [`Store::create`] or the first write makes.
    pub fn at(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    /// Makes the directory (owner-only) if it is not there.
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// What was stored, if anything was.
    pub fn load(&self) -> io::Result<Option<StoredState>> {
        match fs::read(self.dir.join(FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", FILE))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the stored state by `bytes` (a serialized [`StoredState`]).
    fn save(&self, bytes: &[u8]) -> io::Result<()> {
        self.create()?;
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(FILE))?;
        File::open(&self.dir)?.sync_all()
    }
}

/// The writer thread; [`Writer::stop`] writes a last time and joins it.
pub struct Writer {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer: every `interval`, the table's snapshot is written if
/// it differs from the last one written.
pub fn spawn_writer(gov: Arc<Governance>, store: Store, interval: Duration) -> io::Result<Writer> {
    let (stop, stopped) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("state-store".into())
        .spawn(move || {
            let mut last = Vec::new();
            loop {
                let done = !matches!(
                    stopped.recv_timeout(interval),
                    Err(RecvTimeoutError::Timeout)
                );
                flush(&gov, &store, &mut last);
                if done {
                    return;
                }
            }
        })?;
    Ok(Writer {
        stop,
        thread: Some(thread),
    })
}

fn flush(gov: &Governance, store: &Store, last: &mut Vec<u8>) {
    let mut state = gov.table.snapshot();
    state.resources = gov.resources.snapshot();
    // A gateway that never had keys, teams, files or batches leaves no
    // directory behind.
    let never_had = last.is_empty() && !store.dir.join(FILE).exists();
    if never_had && state.keys.is_empty() && state.teams.is_empty() && state.resources.is_empty() {
        return;
    }
    let bytes = match serde_json::to_vec(&state) {
        Ok(b) => b,
        Err(e) => return log_error(format_args!("state store: {e}")),
    };
    if bytes == *last {
        return;
    }
    match store.save(&bytes) {
        Ok(()) => *last = bytes,
        Err(e) => {
            // Tried again at the next interval; spend stays in memory.
            log_error(format_args!(
                "state store: writing {}: {e}",
                store.dir.display()
            ));
        }
    }
}

impl Writer {
    /// Writes what changed since the last flush, and stops.
    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::KeySpec;
    use super::*;

    #[test]
    fn a_snapshot_survives_a_round_trip_through_the_directory() {
        let dir = std::env::temp_dir().join(format!("shardgate-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::at(&dir);
        assert!(store.load().unwrap().is_none());
        let gov = Governance::new();
        let hash = super::super::secret::hash(b"sk-x");
        gov.table.put_key(
            KeySpec {
                id: "k".into(),
                name: "n".into(),
                key_sha256: super::super::secret::to_hex(&hash),
                ..KeySpec::default()
            },
            hash,
        );
        gov.table.key("k").unwrap().ledger.lock().spent_nanos = 1234;
        let writer = spawn_writer(gov.clone(), Store::at(&dir), Duration::from_secs(60)).unwrap();
        writer.stop();
        let again = Governance::new();
        again.table.restore(&store.load().unwrap().unwrap());
        assert_eq!(
            again
                .table
                .by_hash(&hash)
                .unwrap()
                .ledger
                .lock()
                .spent_nanos,
            1234
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_records_no_directory_until_there_were_some() {
        let dir = std::env::temp_dir().join(format!("shardgate-empty-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let gov = Governance::new();
        let (store, mut last) = (Store::at(&dir), Vec::new());
        flush(&gov, &store, &mut last);
        assert!(!dir.exists(), "an empty table made {}", dir.display());
        // Once a record was stored, its removal is stored too.
        let hash = super::super::secret::hash(b"sk-y");
        let spec = KeySpec {
            id: "k".into(),
            key_sha256: super::super::secret::to_hex(&hash),
            ..KeySpec::default()
        };
        gov.table.put_key(spec, hash);
        flush(&gov, &store, &mut last);
        assert_eq!(store.load().unwrap().unwrap().keys.len(), 1);
        let restarted = Governance::new();
        flush(&restarted, &store, &mut Vec::new());
        assert!(store.load().unwrap().unwrap().keys.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
