//! The content store's rules: atomic visibility, checked commits, resumable and exclusive
//! ingests, short-circuits for existing blobs, ingest cleanup and consistency checks.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_image::content::{ContentError, Store};
use berth_image::digest::Digest;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn ingest_entries(root: &Path) -> usize {
    fs::read_dir(root.join("ingest")).unwrap().count()
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn open_creates_layout() {
    let (dir, store) = store();
    assert!(dir.path().join("blobs/sha256").is_dir());
    assert!(dir.path().join("ingest").is_dir());
    let d = Digest::of(b"x");
    assert_eq!(
        store.path(&d),
        dir.path().join("blobs/sha256").join(d.hex())
    );
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn write_blob_round_trip() {
    let (dir, store) = store();
    let d = store.write_blob(b"{\"schemaVersion\":2}").unwrap();
    assert_eq!(d, Digest::of(b"{\"schemaVersion\":2}"));
    assert!(store.contains(&d));
    assert_eq!(store.info(&d).unwrap().size, 19);
    assert_eq!(store.read_to_vec(&d).unwrap(), b"{\"schemaVersion\":2}");
    let mut s = String::new();
    std::io::Read::read_to_string(&mut store.open_blob(&d).unwrap(), &mut s).unwrap();
    assert_eq!(s, "{\"schemaVersion\":2}");
    assert_eq!(store.list().unwrap(), vec![d.clone()]);
    let mode = fs::metadata(store.path(&d)).unwrap().permissions().mode();
    assert_eq!(mode & 0o222, 0, "blob must be read-only, mode {mode:o}");
    assert_eq!(ingest_entries(dir.path()), 0);

    store.delete(&d).unwrap();
    assert!(!store.contains(&d));
    assert!(matches!(store.info(&d), Err(ContentError::NotFound(_))));
    assert!(matches!(
        store.open_blob(&d),
        Err(ContentError::NotFound(_))
    ));
    assert!(matches!(store.delete(&d), Err(ContentError::NotFound(_))));
}

#[test]
fn blob_invisible_until_commit() {
    let (_dir, store) = store();
    let content = data(10_000);
    let d = Digest::of(&content);
    let mut w = store.writer("pull-a", &d, Some(10_000)).unwrap();
    w.write_all(&content[..5_000]).unwrap();
    w.flush().unwrap();
    assert!(!store.contains(&d));
    assert!(!store.path(&d).exists());
    assert!(store.list().unwrap().is_empty());
    w.write_all(&content[5_000..]).unwrap();
    assert!(!store.contains(&d));
    assert_eq!(w.commit().unwrap(), d);
    assert!(store.contains(&d));
    assert_eq!(store.read_to_vec(&d).unwrap(), content);
}

#[test]
fn digest_mismatch_leaves_nothing() {
    let (dir, store) = store();
    let expected = Digest::of(b"right");
    let mut w = store.writer("pull-bad", &expected, None).unwrap();
    w.write_all(b"wrong").unwrap();
    let err = w.commit().unwrap_err();
    assert!(matches!(err, ContentError::DigestMismatch { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "digest mismatch for pull-bad: expected {expected}, got {}",
            Digest::of(b"wrong")
        )
    );
    assert!(store.list().unwrap().is_empty());
    assert_eq!(ingest_entries(dir.path()), 0);
}

#[test]
fn size_mismatch_leaves_nothing() {
    let (dir, store) = store();
    let expected = Digest::of(b"short");
    let mut w = store.writer("pull-size", &expected, Some(6)).unwrap();
    w.write_all(b"short").unwrap();
    let err = w.commit().unwrap_err();
    assert_eq!(
        err.to_string(),
        "size mismatch for pull-size: expected 6, got 5"
    );
    assert!(store.list().unwrap().is_empty());
    assert_eq!(ingest_entries(dir.path()), 0);
}

#[test]
fn write_past_expected_size_fails() {
    let (_dir, store) = store();
    let mut w = store
        .writer("pull-long", &Digest::of(b"abc"), Some(3))
        .unwrap();
    let err = w.write_all(b"abcd").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(w.offset(), 0);
}

#[test]
fn dropped_writer_resumes() {
    let (dir, store) = store();
    let content = data(100_000);
    let d = Digest::of(&content);
    let mut w = store.writer("pull-resume", &d, Some(100_000)).unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(&content[..40_000]).unwrap();
    drop(w); // interrupted: no commit
    assert!(!store.contains(&d));
    assert_eq!(ingest_entries(dir.path()), 1);

    let mut w = store.writer("pull-resume", &d, Some(100_000)).unwrap();
    assert_eq!(w.offset(), 40_000);
    w.write_all(&content[40_000..]).unwrap();
    assert_eq!(w.commit().unwrap(), d);
    assert_eq!(store.read_to_vec(&d).unwrap(), content);
    assert_eq!(ingest_entries(dir.path()), 0);
}

#[test]
fn resume_for_another_digest_starts_over() {
    let (_dir, store) = store();
    let mut w = store.writer("pull-x", &Digest::of(b"first"), None).unwrap();
    w.write_all(b"fir").unwrap();
    drop(w);
    let d = Digest::of(b"second");
    let mut w = store.writer("pull-x", &d, None).unwrap();
    assert_eq!(w.offset(), 0);
    w.write_all(b"second").unwrap();
    assert_eq!(w.commit().unwrap(), d);
}

#[test]
fn second_writer_of_same_ref_is_in_use() {
    let (_dir, store) = store();
    let d = Digest::of(b"busy");
    let mut w = store.writer("pull-busy", &d, None).unwrap();
    let err = store.writer("pull-busy", &d, None).unwrap_err();
    assert!(matches!(err, ContentError::InUse { .. }));
    assert_eq!(
        err.to_string(),
        "ingest \"pull-busy\" is in use by another writer"
    );
    // Released once the holder goes away (here: commits).
    w.write_all(b"bu").unwrap();
    drop(w);
    let mut w = store.writer("pull-busy", &d, None).unwrap();
    assert_eq!(w.offset(), 2);
    w.write_all(b"sy").unwrap();
    w.commit().unwrap();
}

#[test]
fn existing_blob_short_circuits() {
    let (dir, store) = store();
    let d = store.write_blob(b"same").unwrap();
    assert_eq!(store.write_blob(b"same").unwrap(), d);
    assert!(matches!(
        store.writer("pull-same", &d, None),
        Err(ContentError::AlreadyExists(_))
    ));
    assert_eq!(ingest_entries(dir.path()), 0);
    assert_eq!(store.list().unwrap(), vec![d]);
}

#[test]
fn commit_when_blob_appeared_meanwhile_succeeds() {
    let (dir, store) = store();
    let d = Digest::of(b"raced");
    let mut w = store.writer("pull-raced", &d, Some(5)).unwrap();
    w.write_all(b"raced").unwrap();
    assert_eq!(store.write_blob(b"raced").unwrap(), d);
    assert_eq!(w.commit().unwrap(), d);
    assert_eq!(store.list().unwrap(), vec![d]);
    assert_eq!(ingest_entries(dir.path()), 0);
}

#[test]
fn concurrent_writes_of_same_digest_both_succeed() {
    let (dir, store) = store();
    let content = data(50_000);
    let d = Digest::of(&content);
    let mut a = store.writer("pull-a", &d, Some(50_000)).unwrap();
    let mut b = store.writer("pull-b", &d, Some(50_000)).unwrap();
    a.write_all(&content[..20_000]).unwrap();
    b.write_all(&content[..30_000]).unwrap();
    a.write_all(&content[20_000..]).unwrap();
    b.write_all(&content[30_000..]).unwrap();
    assert_eq!(a.commit().unwrap(), d);
    assert_eq!(b.commit().unwrap(), d);
    assert_eq!(store.list().unwrap(), vec![d.clone()]);
    assert_eq!(store.read_to_vec(&d).unwrap(), content);
    assert_eq!(ingest_entries(dir.path()), 0);

    // And from threads, through write_blob.
    let other = data(70_000);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let other = other.clone();
            std::thread::spawn(move || store.write_blob(&other).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Digest::of(&other));
    }
    assert_eq!(store.list().unwrap().len(), 2);
    assert_eq!(ingest_entries(dir.path()), 0);
}

#[test]
fn clean_ingest_removes_only_abandoned_writes() {
    let (dir, store) = store();
    let mut w = store.writer("pull-old", &Digest::of(b"old"), None).unwrap();
    w.write_all(b"ol").unwrap();
    drop(w);
    let mut held = store
        .writer("pull-held", &Digest::of(b"held"), None)
        .unwrap();
    held.write_all(b"he").unwrap();
    assert_eq!(store.clean_ingest(Duration::from_secs(3600)).unwrap(), 0);
    assert_eq!(ingest_entries(dir.path()), 2);
    // Everything counts as old now, but the held one is in use.
    assert_eq!(store.clean_ingest(Duration::ZERO).unwrap(), 1);
    assert_eq!(ingest_entries(dir.path()), 1);
    held.write_all(b"ld").unwrap();
    assert_eq!(held.commit().unwrap(), Digest::of(b"held"));
    assert_eq!(ingest_entries(dir.path()), 0);
}

#[test]
fn verify_all_detects_corruption() {
    let (_dir, store) = store();
    let good = store.write_blob(b"good blob").unwrap();
    let bad = store.write_blob(b"bad blob").unwrap();
    assert!(store.verify_all().unwrap().is_empty());
    let path = store.path(&bad);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    assert_eq!(store.verify_all().unwrap(), vec![bad]);
    assert!(store.contains(&good));
}

const CHILD_ENV: &str = "BERTH_CONTENT_TEST_CHILD_ROOT";
const KILL_REF: &str = "pull-killed";

fn killed_content() -> Vec<u8> {
    data(200_000)
}

/// Not a test on its own: run by `killed_writer_resumes` in a child process, which writes part
/// of a blob, says so through a `ready` file, and waits (at most a minute) to be killed.
#[test]
fn killed_writer_child() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        return;
    };
    let root = Path::new(&root);
    let store = Store::open(root).unwrap();
    let content = killed_content();
    let d = Digest::of(&content);
    let mut w = store
        .writer(KILL_REF, &d, Some(content.len() as u64))
        .unwrap();
    w.write_all(&content[..123_456]).unwrap();
    w.flush().unwrap();
    fs::write(root.join("ready.tmp"), w.offset().to_string()).unwrap();
    fs::rename(root.join("ready.tmp"), root.join("ready")).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

/// Kills the child if the test fails before doing so itself.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_writer_resumes() {
    let (dir, store) = store();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_writer_child", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let ready = dir.path().join("ready");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "child exited before writing"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "child never got ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fs::read_to_string(&ready).unwrap(), "123456");

    let content = killed_content();
    let d = Digest::of(&content);
    let size = Some(content.len() as u64);
    // The child holds the ref's lock.
    assert!(matches!(
        store.writer(KILL_REF, &d, size),
        Err(ContentError::InUse { .. })
    ));
    child.0.kill().unwrap(); // SIGKILL: no destructors run
    child.0.wait().unwrap();

    // The kernel dropped the lock with the process; the partial data is picked up.
    let mut w = store.writer(KILL_REF, &d, size).unwrap();
    assert_eq!(w.offset(), 123_456);
    assert!(!store.contains(&d));
    w.write_all(&content[123_456..]).unwrap();
    assert_eq!(w.commit().unwrap(), d);
    assert_eq!(store.read_to_vec(&d).unwrap(), content);
    assert_eq!(ingest_entries(dir.path()), 0);
}
