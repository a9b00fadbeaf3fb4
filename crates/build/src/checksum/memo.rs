//! A memo of file content digests, so that a rebuild hashes only the files that changed.
//!
//! A file is known by its device and inode; its digest is reused while its size, mtime and
//! ctime (both to the nanosecond) are those recorded. Writing a file changes its ctime and
//! nothing can set a ctime back, so a changed file is always hashed again. The caller keeps the
//! memo between builds and may persist it with [`HashMemo::to_json`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// What identifies a version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileStamp {
    pub(crate) fn of(st: &rustix::fs::Stat) -> FileStamp {
        let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        FileStamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            #[allow(clippy::unnecessary_cast)]
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            #[allow(clippy::unnecessary_cast)]
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }
}

/// Content digests (`sha256` hex) by file; one entry per (device, inode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashMemo {
    entries: HashMap<(u64, u64), (FileStamp, String)>,
}

/// One memo entry as JSON holds it (i128 times as strings: JSON numbers are not that wide).
#[derive(Serialize, Deserialize)]
struct Record {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: String,
    ctime_ns: String,
    sha256: String,
}

impl HashMemo {
    pub fn new() -> HashMemo {
        HashMemo::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The digest recorded for exactly this version of the file.
    pub fn get(&self, stamp: &FileStamp) -> Option<&str> {
        match self.entries.get(&(stamp.dev, stamp.ino)) {
            Some((known, digest)) if known == stamp => Some(digest),
            _ => None,
        }
    }

    /// Records `digest` for the file, replacing what was known of an older version.
    pub fn insert(&mut self, stamp: FileStamp, digest: String) {
        self.entries.insert((stamp.dev, stamp.ino), (stamp, digest));
    }

    /// The memo as JSON, entries in a stable order.
    pub fn to_json(&self) -> String {
        let mut records: Vec<Record> = self
            .entries
            .values()
            .map(|(s, d)| Record {
                dev: s.dev,
                ino: s.ino,
                size: s.size,
                mtime_ns: s.mtime_ns.to_string(),
                ctime_ns: s.ctime_ns.to_string(),
                sha256: d.clone(),
            })
            .collect();
        records.sort_by_key(|r| (r.dev, r.ino));
        serde_json::to_string(&records).unwrap_or_else(|_| "[]".to_string())
    }

    /// Reads what [`HashMemo::to_json`] wrote. Entries that do not parse are dropped (they are
    /// only a cache); text that is not such a list at all is an error.
    pub fn from_json(text: &str) -> Result<HashMemo, serde_json::Error> {
        let records: Vec<Record> = serde_json::from_str(text)?;
        let mut memo = HashMemo::new();
        for r in records {
            let (Ok(mtime_ns), Ok(ctime_ns)) = (r.mtime_ns.parse(), r.ctime_ns.parse()) else {
                continue;
            };
            if r.sha256.len() != 64 || !r.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
                continue;
            }
            let stamp = FileStamp {
                dev: r.dev,
                ino: r.ino,
                size: r.size,
                mtime_ns,
                ctime_ns,
            };
            memo.insert(stamp, r.sha256);
        }
        Ok(memo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_stale_versions() {
        let stamp = FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: 1_700_000_000_123_456_789,
            ctime_ns: -5,
        };
        let mut memo = HashMemo::new();
        memo.insert(stamp, "ab".repeat(32));
        let back = HashMemo::from_json(&memo.to_json()).unwrap();
        assert_eq!(back, memo);
        assert_eq!(back.get(&stamp), Some("ab".repeat(32).as_str()));
        let newer = FileStamp {
            ctime_ns: 9,
            ..stamp
        };
        assert_eq!(back.get(&newer), None);
        memo.insert(newer, "cd".repeat(32));
        assert_eq!(memo.len(), 1, "one entry per inode");
        assert!(HashMemo::from_json("{}").is_err());
        assert!(HashMemo::from_json(
            r#"[{"dev":1,"ino":1,"size":1,"mtime_ns":"x","ctime_ns":"1","sha256":"00"}]"#
        )
        .unwrap()
        .is_empty());
    }
}
