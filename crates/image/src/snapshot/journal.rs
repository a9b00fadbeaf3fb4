//! The snapshot metadata's changes since its last checkpoint (`root/metadata.log`), so that a
//! change costs one short append and sync, not a rewrite of every snapshot's record: with a
//! thousand containers, `metadata.json` is a quarter of a megabyte, and it was written twice per
//! `run --rm`.
//!
//! One JSON line per change, numbered: the checkpoint says which number it holds up to, so
//! that a crash between writing a checkpoint and emptying the log replays nothing twice. A line
//! is acknowledged once synced; a crash in the middle of an append leaves a torn last line,
//! which was never acknowledged and is cut off when the log is opened. An append that fails (a
//! full disk) is cut off at once, so that the next append starts on a line of its own.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metadata::Record;

/// One change of the snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Change {
    /// A new snapshot.
    Insert { key: String, record: Record },
    /// Active `key` became committed `name` on `parent`.
    Commit {
        name: String,
        key: String,
        parent: Option<String>,
    },
    /// `key` is gone.
    Remove { key: String },
}

#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    #[serde(flatten)]
    change: Change,
}

/// The open log.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Its length: what is acknowledged.
    len: u64,
    /// How many changes it holds.
    entries: usize,
}

impl Journal {
    /// Opens (creating) the log at `path`, with the changes it holds in order. A last line
    /// that is torn or unreadable, and whatever follows it, is cut off.
    pub(crate) fn open(path: &Path) -> io::Result<(Journal, Vec<(u64, Change)>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let bytes = fs::read(path)?;
        let mut changes = Vec::new();
        let mut good = 0usize;
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            match serde_json::from_slice::<Line>(line) {
                Ok(l) => changes.push((l.seq, l.change)),
                Err(_) => break,
            }
            good += line.len();
        }
        let len = good as u64;
        if len != bytes.len() as u64 {
            file.set_len(len)?;
            file.sync_data()?;
        }
        let entries = changes.len();
        Ok((
            Journal {
                path: path.to_owned(),
                file,
                len,
                entries,
            },
            changes,
        ))
    }

    /// Appends change `seq` and syncs it. On an error nothing of it is left.
    pub(crate) fn append(&mut self, seq: u64, change: &Change) -> io::Result<()> {
        let mut line = serde_json::to_vec(&Line {
            seq,
            change: change.clone(),
        })
        .map_err(io::Error::other)?;
        line.push(b'\n');
        let written = self
            .file
            .write_all_at(&line, self.len)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += line.len() as u64;
                self.entries += 1;
                Ok(())
            }
            Err(e) => {
                // Cutting needs no space; if even that fails, the torn line is cut at the
                // next open.
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    /// How many changes it holds.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// Empties it, once a checkpoint holds its changes.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_data()?;
        self.len = 0;
        self.entries = 0;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` as they are at the end (for tests that tear a line).
    #[cfg(test)]
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Kind;

    fn insert(key: &str, id: u64) -> Change {
        Change::Insert {
            key: key.into(),
            record: Record {
                id,
                parent: None,
                kind: Kind::Active,
            },
        }
    }

    #[test]
    fn changes_come_back_in_order_and_a_torn_end_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.log");
        let (mut j, none) = Journal::open(&path).unwrap();
        assert!(none.is_empty());
        j.append(1, &insert("a", 1)).unwrap();
        j.append(2, &Change::Remove { key: "a".into() }).unwrap();
        j.write_raw(b"{\"seq\":3,\"op\":\"ins").unwrap();
        drop(j);
        let (mut j, changes) = Journal::open(&path).unwrap();
        assert_eq!(
            changes,
            [(1, insert("a", 1)), (2, Change::Remove { key: "a".into() })]
        );
        assert_eq!(j.entries(), 2);
        // The next append starts on a line of its own.
        j.append(3, &insert("b", 2)).unwrap();
        drop(j);
        let (mut j, changes) = Journal::open(&path).unwrap();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[2], (3, insert("b", 2)));
        j.clear().unwrap();
        drop(j);
        assert!(Journal::open(&path).unwrap().1.is_empty());
    }
}
