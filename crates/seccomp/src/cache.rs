//! A cache of compiled programs, so that a configuration is built with libseccomp once and not
//! at every container start and exec (Docker's default profile takes milliseconds to build).
//!
//! An entry is a file named by the SHA-256 (hex) of everything that determines the program:
//! this crate's format number, version and sources (their SHA-256, from build.rs: a build with
//! another compiler of filters never reads what this one stored), the native architecture,
//! libseccomp's version and API level, and the configuration as JSON. It holds a header (magic, format, key, number of
//! instructions, SHA-256 of the instructions) and the instructions. It is read back with every
//! check (exact size, header, key, digest, at most `BPF_MAXINSNS` instructions); an entry that
//! fails one is compiled again and rewritten, never used.
//!
//! The directory is created `0700` and used only when it belongs to the effective user with no
//! access for others: what is in it ends up in containers' filters. Entries are written to a
//! temporary file then renamed, so that concurrent writers and readers only ever see whole
//! entries. After a write, the least recently used entries beyond [`Cache::max_entries`] are
//! removed (a hit refreshes the entry's modification time).
//!
//! The filter flags and the notify bit of a [`Program`] are not cached: [`compile`]'s cheap
//! checks give them again each time, so that `Program::uses_notify` always holds.
//!
//! [`compile`]: crate::compile

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use libseccomp::{ScmpArch, ScmpVersion};
use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use crate::compile::{check_size, instruction, instructions, prepare, INSN_SIZE};
use crate::{Error, Program};

/// Version of the entries' layout and of what the key covers; bump it when either changes.
const FORMAT: u32 = 1;

/// First bytes of an entry.
const MAGIC: &[u8; 8] = b"BERTHBPF";

/// Header: magic, format (u32), instruction count (u32), key (32 bytes), digest (32 bytes).
const HEADER_LEN: usize = 8 + 4 + 4 + 32 + 32;

/// Entries kept by default.
pub const DEFAULT_MAX_ENTRIES: usize = 64;

/// A temporary file older than this is a writer's leftover (it died between create and rename).
const STALE_TMP: Duration = Duration::from_secs(60);

/// Prefix of temporary files (never a valid entry name, which is 64 hex digits).
const TMP_PREFIX: &str = ".tmp-";

/// Why the cache was not used; the program is compiled all the same.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory could not be created or inspected.
    #[error("seccomp cache: directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory is not a directory private to the effective user.
    #[error("seccomp cache: {} is not a directory private to uid {uid}", path.display())]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// The effective user id.
        uid: u32,
    },
    /// Reading an entry failed.
    #[error("seccomp cache: reading {}: {source}", path.display())]
    Read {
        /// The entry.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// An entry is not a valid program for its key.
    #[error("seccomp cache: {}: invalid entry: {reason}", path.display())]
    Invalid {
        /// The entry.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing an entry failed.
    #[error("seccomp cache: writing {}: {source}", path.display())]
    Write {
        /// The file being written or renamed.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
}

/// How [`Cache::compile`] got its program.
#[derive(Debug)]
pub enum Outcome {
    /// Read from the cache.
    Hit,
    /// Compiled (no entry) and stored.
    Stored,
    /// Compiled because the entry was unusable (the error says why), and stored again.
    Replaced(CacheError),
    /// Compiled but not stored, or the cache could not be used at all (the error says why).
    Uncached(CacheError),
}

/// Compiled programs stored as files in a directory (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_entries: usize,
}

impl Cache {
    /// A cache in `dir` (created `0700` when first used), of [`DEFAULT_MAX_ENTRIES`] entries.
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }

    /// The same cache keeping at most `max` entries (at least one).
    pub fn with_max_entries(self, max: usize) -> Cache {
        Cache {
            max_entries: max.max(1),
            ..self
        }
    }

    /// The directory of the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The most entries kept.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The path of `seccomp`'s entry.
    pub fn entry_path(&self, seccomp: &LinuxSeccomp) -> Result<PathBuf, Error> {
        Ok(self.dir.join(hex::encode(key(seccomp)?)))
    }

    /// [`crate::compile`], through the cache: the same checks and errors, the same program.
    ///
    /// A cache that cannot be used never fails the call: [`Outcome`] says what happened.
    pub fn compile(&self, seccomp: &LinuxSeccomp) -> Result<(Program, Outcome), Error> {
        let prepared = prepare(seccomp)?;
        let key = key(seccomp)?;
        let path = self.dir.join(hex::encode(key));
        let found = match self.private_dir() {
            Ok(()) => read_entry(&path, &key),
            Err(e) => {
                let instructions = instructions(seccomp, &prepared)?;
                return Ok((prepared.program(instructions), Outcome::Uncached(e)));
            }
        };
        let replaced = match found {
            Ok(Some(instructions)) => return Ok((prepared.program(instructions), Outcome::Hit)),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        let instructions = instructions(seccomp, &prepared)?;
        let outcome = match (self.store(&path, &key, &instructions), replaced) {
            (Err(e), _) => Outcome::Uncached(e),
            (Ok(()), Some(e)) => Outcome::Replaced(e),
            (Ok(()), None) => Outcome::Stored,
        };
        Ok((prepared.program(instructions), outcome))
    }

    /// Creates the directory if needed, and checks it is private to the effective user.
    fn private_dir(&self) -> Result<(), CacheError> {
        let dir_err = |source| CacheError::Dir {
            path: self.dir.clone(),
            source,
        };
        if let Some(parent) = self.dir.parent() {
            fs::create_dir_all(parent).map_err(dir_err)?;
        }
        match DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(dir_err(e)),
        }
        let meta = fs::symlink_metadata(&self.dir).map_err(dir_err)?;
        let uid = rustix::process::geteuid().as_raw();
        if !meta.is_dir() || meta.uid() != uid {
            return Err(CacheError::NotPrivate {
                path: self.dir.clone(),
                uid,
            });
        }
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(dir_err)?;
        }
        Ok(())
    }

    /// Writes the entry at `path` atomically, then trims the cache.
    fn store(
        &self,
        path: &Path,
        key: &[u8; 32],
        instructions: &[libc::sock_filter],
    ) -> Result<(), CacheError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Write { path, source }
        };
        let bytes = encode(key, instructions).map_err(write_err(&tmp))?;
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .and_then(|mut file| file.write_all(&bytes))
            .map_err(write_err(&tmp))
            .and_then(|()| fs::rename(&tmp, path).map_err(write_err(path)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        self.trim();
        Ok(())
    }

    /// Removes the least recently used entries beyond `max_entries`, and stale temporary
    /// files. Best effort: another process may be trimming too.
    fn trim(&self) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.starts_with(TMP_PREFIX) {
                if now.duration_since(modified).unwrap_or_default() > STALE_TMP {
                    let _ = fs::remove_file(entry.path());
                }
            } else if is_entry_name(name) && meta.is_file() {
                entries.push((modified, entry.path()));
            }
        }
        if entries.len() <= self.max_entries {
            return;
        }
        entries.sort();
        let excess = entries.len() - self.max_entries;
        for (_, path) in entries.into_iter().take(excess) {
            let _ = fs::remove_file(path);
        }
    }
}

/// Whether `name` is an entry's: 64 lowercase hex digits.
fn is_entry_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The key of `seccomp`'s program (see the module's documentation).
fn key(seccomp: &LinuxSeccomp) -> Result<[u8; 32], Error> {
    let json = serde_json::to_vec(seccomp).map_err(Error::CacheKey)?;
    let version = ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let mut hash = Sha256::new();
    hash.update(MAGIC);
    hash.update(FORMAT.to_le_bytes());
    for part in [
        env!("CARGO_PKG_VERSION"),
        env!("BERTH_SECCOMP_SOURCE_HASH"),
        std::env::consts::ARCH,
        &format!("{:?}", ScmpArch::native()),
        &version,
        &libseccomp::get_api().to_string(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hash.update(&json);
    Ok(hash.finalize().into())
}

/// An entry's bytes.
fn encode(key: &[u8; 32], instructions: &[libc::sock_filter]) -> std::io::Result<Vec<u8>> {
    let count = u32::try_from(instructions.len())
        .map_err(|_| std::io::Error::other("too many instructions"))?;
    let payload = payload(instructions);
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_ne_bytes());
    bytes.extend_from_slice(&count.to_ne_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// The instructions as the kernel's native-endian `struct sock_filter` array.
fn payload(instructions: &[libc::sock_filter]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(instructions.len() * INSN_SIZE);
    for insn in instructions {
        bytes.extend_from_slice(&insn.code.to_ne_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_ne_bytes());
    }
    bytes
}

/// The instructions of the entry at `path` if there is one; an error if it is unusable.
fn read_entry(path: &Path, key: &[u8; 32]) -> Result<Option<Vec<libc::sock_filter>>, CacheError> {
    let read_err = |source| CacheError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let max = HEADER_LEN + usize::try_from(libc::BPF_MAXINSNS).unwrap_or(4096) * INSN_SIZE;
    let mut bytes = Vec::new();
    (&file)
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let instructions = decode(&bytes, key).map_err(|reason| CacheError::Invalid {
        path: path.to_path_buf(),
        reason,
    })?;
    // Least recently *used* goes first when trimming.
    let _ = touch(&file);
    Ok(Some(instructions))
}

/// Sets the modification time of `file` to now.
fn touch(file: &File) -> std::io::Result<()> {
    file.set_modified(SystemTime::now())
}

/// The instructions of an entry's `bytes`, checked against `key`.
fn decode(bytes: &[u8], key: &[u8; 32]) -> Result<Vec<libc::sock_filter>, String> {
    let Some((header, payload)) = bytes.split_at_checked(HEADER_LEN) else {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    };
    let (magic, rest) = header.split_at(MAGIC.len());
    let (format, rest) = rest.split_at(4);
    let (count, rest) = rest.split_at(4);
    let (stored_key, digest) = rest.split_at(32);
    if magic != MAGIC {
        return Err("bad magic".into());
    }
    let format = u32::from_ne_bytes(format.try_into().map_err(|_| "short format")?);
    if format != FORMAT {
        return Err(format!("format {format}, expected {FORMAT}"));
    }
    if stored_key != key {
        return Err("entry of another key".into());
    }
    let count = u32::from_ne_bytes(count.try_into().map_err(|_| "short count")?);
    let count = usize::try_from(count).map_err(|e| e.to_string())?;
    if count == 0 {
        return Err("no instructions".into());
    }
    check_size(count).map_err(|e| e.to_string())?;
    if payload.len() % INSN_SIZE != 0 || payload.len() / INSN_SIZE != count {
        return Err(format!(
            "{} bytes of instructions, expected {count} of {INSN_SIZE} bytes",
            payload.len()
        ));
    }
    if Sha256::digest(payload).as_slice() != digest {
        return Err("instructions do not match their digest".into());
    }
    Ok(payload.chunks_exact(INSN_SIZE).map(instruction).collect())
}

#[cfg(test)]
mod tests;
