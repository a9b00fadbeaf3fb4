//! The snapshotter conformance suite: the same tests, generic over `&dyn Snapshotter`, run against
//! every backend (`overlay::*`, `copy::*`, `btrfs::*`), mounting the returned mounts for real;
//! then each backend's own tests (`overlay_only::*`, `copy_only::*`, `btrfs_only::*`). The btrfs
//! tests each make a btrfs of their own on a loop device (`berth_tests::smallfs::SmallFs`),
//! unmounted and freed on drop.
//!
//! Needs root (mount(2), mknod, chown), and `mkfs.btrfs` for btrfs; as another user (or without
//! btrfs-progs) every test says so and passes, but under `CI=true` a missing prerequisite fails.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::snapshot::{
    BtrfsSnapshotter, CopySnapshotter, Info, Kind, Mount, OverlaySnapshotter, SnapshotError,
    Snapshotter,
};
use berth_tests::smallfs::SmallFs;

/// One backend under test: how to open it, how a layer deletes a file in an upper dir, and
/// where its roots can be.
struct Backend {
    try_open: fn(&Path) -> Result<Box<dyn Snapshotter>, SnapshotError>,
    delete: fn(upper: &Path, name: &str),
    /// A scratch directory for a test's roots and mount points.
    scratch: fn() -> Scratch,
    /// A small filesystem to fill, for the full-disk test, and how much a file must hold there
    /// for its removal to show in the free space (btrfs counts its global reserve, some MB, as
    /// used: only what is freed beyond it shows).
    small: fn() -> SmallFs,
    big: usize,
    /// Run while waiting for freed space to show: btrfs gives it back at a transaction commit
    /// after its cleaner dropped the subvolume (the removal starts the cleaner; the test commits
    /// rather than wait for the periodic commit).
    settle: fn(&Path),
    /// Whether it needs a btrfs (and so `mkfs.btrfs`).
    needs_btrfs: bool,
}

/// Where a test makes its roots: a temporary directory, or a filesystem of its own.
enum Scratch {
    Dir(tempfile::TempDir),
    Fs(SmallFs),
}

impl Scratch {
    fn path(&self) -> &Path {
        match self {
            Scratch::Dir(dir) => dir.path(),
            Scratch::Fs(fs) => fs.path(),
        }
    }
}

fn temporary_dir() -> Scratch {
    Scratch::Dir(tempfile::tempdir().expect("tempdir"))
}

fn small_tmpfs() -> SmallFs {
    SmallFs::tmpfs(4 << 20).expect("tmpfs")
}

/// A loop btrfs of `megabytes`.
fn btrfs(megabytes: u64) -> SmallFs {
    SmallFs::btrfs(megabytes).expect("a loop btrfs")
}

const OVERLAY: Backend = Backend {
    try_open: |root| Ok(Box::new(OverlaySnapshotter::new(root)?)),
    scratch: temporary_dir,
    small: small_tmpfs,
    big: 512 << 10,
    settle: |_| {},
    needs_btrfs: false,
    // An overlay whiteout: a character device 0/0 in the upper dir.
    delete: |upper, name| {
        nix::sys::stat::mknod(
            &upper.join(name),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .expect("mknod whiteout")
    },
};

const COPY: Backend = Backend {
    try_open: |root| Ok(Box::new(CopySnapshotter::new(root)?)),
    delete: |upper, name| fs::remove_file(upper.join(name)).expect("delete in copy"),
    scratch: temporary_dir,
    small: small_tmpfs,
    big: 512 << 10,
    settle: |_| {},
    needs_btrfs: false,
};

const BTRFS: Backend = Backend {
    try_open: |root| Ok(Box::new(BtrfsSnapshotter::new(root)?)),
    delete: |upper, name| fs::remove_file(upper.join(name)).expect("delete in btrfs"),
    scratch: || Scratch::Fs(btrfs(512)),
    small: || btrfs(128),
    big: 24 << 20,
    settle: |path| {
        let _ = std::process::Command::new("btrfs")
            .args(["filesystem", "sync"])
            .arg(path)
            .status();
    },
    needs_btrfs: true,
};

impl Backend {
    fn open(&self, root: &Path) -> Box<dyn Snapshotter> {
        (self.try_open)(root).unwrap_or_else(|e| panic!("open {}: {e}", root.display()))
    }

    fn scratch(&self) -> Scratch {
        (self.scratch)()
    }

    /// Whether a prerequisite is missing (then the test says so and passes, but fails under
    /// `CI=true`).
    fn skip(&self) -> bool {
        not_root() || (self.needs_btrfs && berth_tests::smallfs::skip_btrfs())
    }
}

fn not_root() -> bool {
    let not_root = !nix::unistd::Uid::effective().is_root();
    if not_root {
        eprintln!("skipped: the snapshotter tests need root");
    }
    not_root
}

/// A mount made by a test, detached on drop (also when the test fails).
struct Mounted {
    target: PathBuf,
}

impl Mounted {
    fn new(mounts: &[Mount], target: &Path) -> Mounted {
        assert_eq!(mounts.len(), 1, "one mount per snapshot: {mounts:?}");
        fs::create_dir_all(target).expect("mkdir target");
        mounts[0]
            .mount(target)
            .unwrap_or_else(|e| panic!("mount {mounts:?}: {e}"));
        Mounted {
            target: target.to_owned(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.target.join(name)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).expect("write");
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// Three committed layers: A (a.txt, shared.txt=a, gone.txt), B (b.txt, shared.txt=b, deletes
/// gone.txt), C (c.txt).
fn three_layers(s: &dyn Snapshotter, backend: &Backend) {
    s.prepare("a-active", None).expect("prepare a");
    let up = s.upper_dir("a-active").expect("upper a");
    write(&up, "a.txt", "a");
    write(&up, "shared.txt", "a");
    write(&up, "gone.txt", "a");
    s.commit("A", "a-active").expect("commit A");

    s.prepare("b-active", Some("A")).expect("prepare b");
    let up = s.upper_dir("b-active").expect("upper b");
    write(&up, "b.txt", "b");
    write(&up, "shared.txt", "b");
    (backend.delete)(&up, "gone.txt");
    s.commit("B", "b-active").expect("commit B");

    s.prepare("c-active", Some("B")).expect("prepare c");
    let up = s.upper_dir("c-active").expect("upper c");
    write(&up, "c.txt", "c");
    s.commit("C", "c-active").expect("commit C");
}

fn info(key: &str, parent: Option<&str>, kind: Kind) -> Info {
    Info {
        key: key.to_owned(),
        parent: parent.map(str::to_owned),
        kind,
    }
}

fn chain_of_three_layers_is_visible(backend: &Backend) {
    let dir = backend.scratch();
    let s = backend.open(&dir.path().join("root"));
    three_layers(&*s, backend);
    let mounts = s.prepare("ctr", Some("C")).expect("prepare ctr");
    let m = Mounted::new(&mounts, &dir.path().join("mnt"));
    assert_eq!(read(&m.path("a.txt")).as_deref(), Some("a"));
    assert_eq!(read(&m.path("b.txt")).as_deref(), Some("b"));
    assert_eq!(read(&m.path("c.txt")).as_deref(), Some("c"));
    assert_eq!(
        read(&m.path("shared.txt")).as_deref(),
        Some("b"),
        "upper layer wins"
    );
    assert_eq!(
        s.stat("ctr").expect("stat"),
        info("ctr", Some("C"), Kind::Active)
    );
    assert_eq!(
        s.stat("B").expect("stat"),
        info("B", Some("A"), Kind::Committed)
    );
    let list = s.list().expect("list");
    assert_eq!(
        list,
        vec![
            info("A", None, Kind::Committed),
            info("B", Some("A"), Kind::Committed),
            info("C", Some("B"), Kind::Committed),
            info("ctr", Some("C"), Kind::Active),
        ]
    );
    assert_eq!(s.mounts("ctr").expect("mounts"), mounts);
}

fn deleted_file_is_hidden(backend: &Backend) {
    let dir = backend.scratch();
    let s = backend.open(&dir.path().join("root"));
    three_layers(&*s, backend);
    for (parent, mnt) in [("B", "mnt-b"), ("C", "mnt-c")] {
        let key = format!("ctr-{parent}");
        let m = Mounted::new(
            &s.prepare(&key, Some(parent)).expect("prepare"),
            &dir.path().join(mnt),
        );
        assert!(
            !m.path("gone.txt").exists(),
            "deleted in B, seen on {parent}"
        );
        assert!(m.path("a.txt").exists());
        let v = Mounted::new(
            &s.view(&format!("view-{parent}"), Some(parent))
                .expect("view"),
            &dir.path().join(format!("{mnt}-view")),
        );
        assert!(
            !v.path("gone.txt").exists(),
            "deleted in B, seen in a view of {parent}"
        );
        assert!(v.path("a.txt").exists());
    }
    let m = Mounted::new(
        &s.view("view-a", Some("A")).expect("view"),
        &dir.path().join("mnt-a"),
    );
    assert_eq!(
        read(&m.path("gone.txt")).as_deref(),
        Some("a"),
        "still in A"
    );
}

fn writes_go_to_the_active_snapshot_only(backend: &Backend) {
    let dir = backend.scratch();
    let s = backend.open(&dir.path().join("root"));
    three_layers(&*s, backend);
    {
        let m = Mounted::new(
            &s.prepare("ctr", Some("C")).expect("prepare"),
            &dir.path().join("mnt"),
        );
        write(&m.target, "new.txt", "new");
        write(&m.target, "a.txt", "changed");
        fs::remove_file(m.path("b.txt")).expect("delete through the mount");
    }
    let upper = s.upper_dir("ctr").expect("upper");
    assert_eq!(read(&upper.join("new.txt")).as_deref(), Some("new"));
    assert_eq!(read(&upper.join("a.txt")).as_deref(), Some("changed"));
    // The parents are untouched: a fresh container on C sees the original files.
    let m = Mounted::new(
        &s.prepare("ctr2", Some("C")).expect("prepare"),
        &dir.path().join("mnt2"),
    );
    assert!(!m.path("new.txt").exists());
    assert_eq!(read(&m.path("a.txt")).as_deref(), Some("a"));
    assert_eq!(read(&m.path("b.txt")).as_deref(), Some("b"));
}

fn views_are_read_only(backend: &Backend) {
    let dir = backend.scratch();
    let s = backend.open(&dir.path().join("root"));
    three_layers(&*s, backend);
    for (key, parent) in [("v0", None), ("v1", Some("A")), ("v3", Some("C"))] {
        let mounts = s.view(key, parent).expect("view");
        assert_eq!(s.stat(key).expect("stat").kind, Kind::View);
        let m = Mounted::new(&mounts, &dir.path().join(key));
        let err = fs::write(m.path("x.txt"), "x").expect_err("write to a view");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{key}: {err}");
        if parent.is_some() {
            assert_eq!(read(&m.path("a.txt")).as_deref(), Some("a"));
        }
        assert!(matches!(
            s.upper_dir(key),
            Err(SnapshotError::WrongKind { .. })
        ));
        assert!(matches!(
            s.commit("from-view", key),
            Err(SnapshotError::WrongKind { .. })
        ));
    }
}

fn remove_refuses_a_parent_with_children(backend: &Backend) {
    let dir = backend.scratch();
    let s = backend.open(&dir.path().join("root"));
    three_layers(&*s, backend);
    s.view("v", Some("C")).expect("view");
    for key in ["A", "B", "C"] {
        let err = s.remove(key).expect_err("remove a parent");
        assert!(matches!(err, SnapshotError::HasChildren { .. }), "{err}");
        assert!(err.to_string().contains(key), "error names the key: {err}");
    }
    for key in ["v", "C", "B", "A"] {
        s.remove(key)
            .unwrap_or_else(|e| panic!("remove {key}: {e}"));
        assert!(matches!(s.stat(key), Err(SnapshotError::NotFound { .. })));
    }
    assert!(matches!(s.remove("A"), Err(SnapshotError::NotFound { .. })));
}

fn misuse_is_refused(backend: &Backend) {
    let dir = backend.scratch();
    let s = backend.open(&dir.path().join("root"));
    s.prepare("act", None).expect("prepare");
    let err = s.prepare("act", None).expect_err("same key twice");
    assert!(matches!(err, SnapshotError::AlreadyExists { .. }), "{err}");
    let err = s.prepare("child", Some("act")).expect_err("active parent");
    assert!(
        matches!(err, SnapshotError::ParentNotCommitted { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("child") && err.to_string().contains("act"));
    let err = s.view("child", Some("nope")).expect_err("missing parent");
    assert!(matches!(err, SnapshotError::NotFound { .. }), "{err}");
    assert!(matches!(
        s.prepare("", None),
        Err(SnapshotError::InvalidKey { .. })
    ));
    s.prepare("other", None).expect("prepare");
    let err = s
        .commit("other", "act")
        .expect_err("commit onto a taken name");
    assert!(matches!(err, SnapshotError::AlreadyExists { .. }), "{err}");
    s.commit("done", "act").expect("commit");
    assert!(matches!(
        s.mounts("done"),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        s.upper_dir("done"),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        s.commit("again", "done"),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(s.stat("act"), Err(SnapshotError::NotFound { .. })));
    // Failed calls left nothing behind.
    let keys: Vec<String> = s.list().expect("list").into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["done", "other"]);
}

fn metadata_survives_reopening(backend: &Backend) {
    let dir = backend.scratch();
    let root = dir.path().join("root");
    let (list, mounts) = {
        let s = backend.open(&root);
        three_layers(&*s, backend);
        let mounts = s.prepare("ctr", Some("C")).expect("prepare");
        s.view("v", Some("B")).expect("view");
        (s.list().expect("list"), mounts)
    };
    assert!(root.join("metadata.json").is_file());
    let s = backend.open(&root);
    assert_eq!(s.list().expect("list"), list);
    assert_eq!(s.mounts("ctr").expect("mounts"), mounts);
    let m = Mounted::new(&mounts, &dir.path().join("mnt"));
    assert_eq!(read(&m.path("c.txt")).as_deref(), Some("c"));
    // New snapshots get fresh ids: a new one on A is independent of the old ones.
    s.prepare("ctr2", Some("A")).expect("prepare after reopen");
    assert!(s.upper_dir("ctr2").expect("upper") != s.upper_dir("ctr").expect("upper"));
}

fn remove_cleans_the_directories(backend: &Backend) {
    let dir = backend.scratch();
    let root = dir.path().join("root");
    let s = backend.open(&root);
    three_layers(&*s, backend);
    s.prepare("ctr", Some("C")).expect("prepare");
    s.view("v", Some("C")).expect("view");
    let upper = s.upper_dir("ctr").expect("upper");
    assert!(upper.is_dir());
    for key in ["ctr", "v", "C", "B", "A"] {
        s.remove(key).expect("remove");
    }
    assert!(!upper.exists());
    let left: Vec<_> = fs::read_dir(root.join("snapshots"))
        .expect("read snapshots")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    if root.join("l").exists() {
        assert_eq!(fs::read_dir(root.join("l")).expect("read l").count(), 0);
    }
    assert!(s.list().expect("list").is_empty());
}

fn a_root_has_one_owner(backend: &Backend) {
    let dir = backend.scratch();
    let root = dir.path().join("root");
    let s = backend.open(&root);
    s.prepare("x", None).expect("prepare");
    let err = (backend.try_open)(&root)
        .err()
        .expect("a second instance on the same root");
    assert!(matches!(err, SnapshotError::Locked { .. }), "{err}");
    drop(s);
    let s = backend.open(&root);
    assert_eq!(s.stat("x").expect("stat").kind, Kind::Active);
    // A lock that goes a moment later (a child forked by the other instance's process shares
    // it until it execs) is waited for.
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _held = s;
        tx.send(()).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(100));
    });
    rx.recv().expect("held");
    let s = (backend.try_open)(&root).expect("opened once the holder went");
    holder.join().expect("join");
    assert_eq!(s.stat("x").expect("stat").kind, Kind::Active);
}

/// Rebasing: a layer applied into a snapshot prepared without a parent, then committed on top
/// of one, stacks as if it had been prepared there. Backends that cannot say so and refuse.
fn commit_onto_stacks_a_layer_made_alone(backend: &Backend) {
    let dir = backend.scratch();
    let s = backend.open(&dir.path().join("root"));
    s.prepare("a-active", None).expect("prepare a");
    write(&s.upper_dir("a-active").expect("upper"), "a.txt", "a");
    s.prepare("b-alone", None).expect("prepare b");
    let up = s.upper_dir("b-alone").expect("upper");
    write(&up, "b.txt", "b");
    write(&up, "a.txt", "from b");
    if !s.can_rebase() {
        let err = s
            .commit_onto("B", "b-alone", Some("A"))
            .expect_err("must fail");
        assert!(err.to_string().contains("cannot"), "{err}");
        return;
    }
    // The parent must be committed first.
    let err = s
        .commit_onto("B", "b-alone", Some("a-active"))
        .expect_err("must fail");
    assert!(err.to_string().contains("not committed"), "{err}");
    s.commit("A", "a-active").expect("commit A");
    s.commit_onto("B", "b-alone", Some("A"))
        .expect("commit B onto A");
    assert_eq!(
        s.stat("B").expect("stat"),
        info("B", Some("A"), Kind::Committed)
    );
    let mounts = s.view("v", Some("B")).expect("view");
    let m = Mounted::new(&mounts, &dir.path().join("mnt"));
    assert_eq!(read(&m.path("b.txt")).as_deref(), Some("b"));
    assert_eq!(read(&m.path("a.txt")).as_deref(), Some("from b"));
    drop(m);
    let err = s.remove("A").expect_err("must fail");
    assert!(matches!(err, SnapshotError::HasChildren { .. }), "{err}");
}

/// On a full disk a removal still works and frees the space (the metadata cannot be saved
/// before the data goes), a failed prepare leaves everything as it was, and once there is
/// space again the layers below are there, without a reopen.
fn removal_frees_space_on_a_full_disk(backend: &Backend) {
    if berth_tests::smallfs::skip(false) {
        return;
    }
    let mut small = (backend.small)();
    let root = small.path().join("root");
    let s = backend.open(&root);
    three_layers(&*s, backend);
    s.prepare("ctr", Some("C")).expect("prepare ctr");
    let upper = s.upper_dir("ctr").expect("upper");
    fs::write(upper.join("big"), vec![7u8; backend.big]).expect("write big");
    small.fill().expect("fill");

    // A prepare may still fit in space its records already hold (the metadata log's last
    // page): the first one that does not fit fails.
    let mut fitted = Vec::new();
    let (key, err) = loop {
        let key = format!("more{}", fitted.len());
        match s.prepare(&key, Some("C")) {
            Ok(_) if fitted.len() < 200 => fitted.push(key),
            Ok(_) => panic!("200 prepares on a full disk"),
            Err(e) => break (key, e),
        }
    };
    assert!(err.is_no_space(), "{err}");
    assert!(matches!(s.stat(&key), Err(SnapshotError::NotFound { .. })));
    for key in fitted {
        s.remove(&key).expect("remove on a full disk");
    }
    let before = small.free();
    s.remove("ctr").expect("remove on a full disk");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while small.free() <= before + backend.big as u64 / 2 {
        assert!(std::time::Instant::now() < deadline, "space freed");
        std::thread::sleep(std::time::Duration::from_millis(50));
        (backend.settle)(small.path());
    }
    assert!(!upper.exists());
    assert!(matches!(s.stat("ctr"), Err(SnapshotError::NotFound { .. })));
    assert_eq!(
        s.stat("C").expect("stat C"),
        info("C", Some("B"), Kind::Committed)
    );

    small.unfill();
    let mounts = s
        .view("v", Some("C"))
        .expect("view of C once there is space");
    let m = Mounted::new(&mounts, &small.path().join("mnt"));
    assert_eq!(read(&m.path("c.txt")).as_deref(), Some("c"));
    drop(m);
    drop(s);
    let s = backend.open(&root);
    let keys: Vec<String> = s.list().expect("list").into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["A", "B", "C", "v"]);
}

/// A snapshot whose directory is gone (a removal on a full disk whose metadata could not be
/// saved even after its data went) is forgotten when the root is opened.
fn a_record_without_its_directory_is_dropped_at_open(backend: &Backend) {
    let dir = backend.scratch();
    let root = dir.path().join("root");
    {
        let s = backend.open(&root);
        three_layers(&*s, backend);
        s.prepare("ctr", Some("C")).expect("prepare");
        s.prepare("other", Some("C")).expect("prepare");
    }
    let id = |key: &str| -> String {
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(root.join("metadata.json")).expect("read"))
                .expect("json");
        meta["snapshots"][key]["id"].to_string()
    };
    fs::remove_dir_all(root.join("snapshots").join(id("ctr"))).expect("rm");
    let s = backend.open(&root);
    let keys: Vec<String> = s.list().expect("list").into_iter().map(|i| i.key).collect();
    assert_eq!(keys, ["A", "B", "C", "other"]);
    drop(s);
    assert_eq!(id("ctr"), "null", "saved without it");
}

/// Runs each generic test against one backend, in a module of its name.
macro_rules! backend_tests {
    ($module:ident, $backend:ident, [$($test:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    if super::$backend.skip() {
                        return;
                    }
                    super::$test(&super::$backend);
                }
            )*
        }
    };
}

/// Runs each generic test against each backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        backend_tests!(overlay, OVERLAY, [$($test),*]);
        backend_tests!(copy, COPY, [$($test),*]);
        backend_tests!(btrfs, BTRFS, [$($test),*]);
    };
}

conformance!(
    chain_of_three_layers_is_visible,
    deleted_file_is_hidden,
    writes_go_to_the_active_snapshot_only,
    views_are_read_only,
    remove_refuses_a_parent_with_children,
    misuse_is_refused,
    metadata_survives_reopening,
    remove_cleans_the_directories,
    a_root_has_one_owner,
    commit_onto_stacks_a_layer_made_alone,
    removal_frees_space_on_a_full_disk,
    a_record_without_its_directory_is_dropped_at_open,
);

mod overlay_only {
    use super::*;

    #[test]
    fn overlay_is_supported_here() {
        if not_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(berth_image::snapshot::overlay_supported(dir.path()));
        assert_eq!(
            fs::read_dir(dir.path()).expect("read").count(),
            0,
            "cleaned up"
        );
    }

    #[test]
    fn a_root_that_options_cannot_hold_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = OverlaySnapshotter::new(dir.path().join("a:b")).expect_err("':' in root");
        assert!(matches!(err, SnapshotError::UnusableRoot { .. }), "{err}");
    }

    #[test]
    fn mounts_have_the_documented_shapes() {
        if not_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let s = OverlaySnapshotter::new(&root).expect("open");
        let m = s.prepare("base", None).expect("prepare");
        assert_eq!(m[0].typ, "bind");
        assert_eq!(m[0].options, ["rbind", "rw"]);
        let base_fs = s.upper_dir("base").expect("upper");
        assert_eq!(Path::new(&m[0].source), base_fs);
        assert!(base_fs.starts_with(root.join("snapshots")) && base_fs.ends_with("fs"));
        s.commit("L1", "base").expect("commit");
        s.prepare("l2", Some("L1")).expect("prepare");
        let l2_fs = s.upper_dir("l2").expect("upper");
        s.commit("L2", "l2").expect("commit");

        let m = s.view("v1", Some("L1")).expect("view");
        assert_eq!(m[0].typ, "bind");
        assert_eq!(m[0].options, ["rbind", "ro"]);
        assert_eq!(Path::new(&m[0].source), base_fs);

        let m = s.view("v2", Some("L2")).expect("view");
        assert_eq!(m[0].typ, "overlay");
        let lower = format!("lowerdir={}:{}", l2_fs.display(), base_fs.display());
        assert_eq!(
            m[0].options,
            std::slice::from_ref(&lower),
            "nearest parent first, no upper"
        );

        let m = s.prepare("ctr", Some("L2")).expect("prepare");
        let ctr = s.upper_dir("ctr").expect("upper");
        let work = ctr.parent().expect("snapshot dir").join("work");
        assert_eq!(m[0].typ, "overlay");
        assert_eq!(m[0].source, "overlay");
        assert_eq!(
            m[0].options,
            [
                lower,
                format!("upperdir={}", ctr.display()),
                format!("workdir={}", work.display())
            ]
        );
        assert_eq!(m[0].cwd, None);
        assert!(work.is_dir());
    }

    #[test]
    fn two_hundred_layers_mount() {
        if not_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let s =
            OverlaySnapshotter::new(dir.path().join("root-with-a-rather-long-name")).expect("open");
        let mut parent: Option<String> = None;
        for i in 0..200 {
            let key = format!("active-{i}");
            s.prepare(&key, parent.as_deref()).expect("prepare");
            write(
                &s.upper_dir(&key).expect("upper"),
                &format!("layer-{i}"),
                &i.to_string(),
            );
            let name = format!("layer-{i}");
            s.commit(&name, &key).expect("commit");
            parent = Some(name);
        }
        let mounts = s
            .prepare("ctr", parent.as_deref())
            .expect("prepare on 200 layers");
        let data = mounts[0].options.join(",");
        assert!(data.len() < 4096, "{} bytes", data.len());
        assert_eq!(
            mounts[0].cwd.as_deref(),
            Some(s.root()),
            "short relative paths"
        );
        assert!(mounts[0].options[0].starts_with("lowerdir=l/"));
        let m = Mounted::new(&mounts, &dir.path().join("mnt"));
        for i in [0, 1, 100, 199] {
            assert_eq!(read(&m.path(&format!("layer-{i}"))), Some(i.to_string()));
        }
        write(&m.target, "top", "written");
        assert!(s.upper_dir("ctr").expect("upper").join("top").is_file());
        // A view of all 200 layers mounts too, read-only.
        let v = Mounted::new(
            &s.view("v", parent.as_deref()).expect("view"),
            &dir.path().join("view"),
        );
        assert!(v.path("layer-0").is_file());
        let err = fs::write(v.path("x"), "x").expect_err("write to view");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    }
}

mod copy_only {
    use super::*;

    #[test]
    fn prepare_copies_everything_a_layer_carries() {
        if not_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let s = CopySnapshotter::new(dir.path().join("root")).expect("open");
        s.prepare("base", None).expect("prepare");
        let up = s.upper_dir("base").expect("upper");
        fs::create_dir(up.join("dir")).expect("mkdir");
        write(&up, "dir/file", "content");
        fs::set_permissions(up.join("dir/file"), fs::Permissions::from_mode(0o4751))
            .expect("chmod");
        std::os::unix::fs::chown(up.join("dir/file"), Some(1000), Some(2000)).expect("chown");
        fs::set_permissions(up.join("dir/file"), fs::Permissions::from_mode(0o4751))
            .expect("chmod after chown");
        fs::set_permissions(up.join("dir"), fs::Permissions::from_mode(0o1777)).expect("chmod");
        fs::hard_link(up.join("dir/file"), up.join("hardlink")).expect("link");
        std::os::unix::fs::symlink("dir/file", up.join("symlink")).expect("symlink");
        std::os::unix::fs::lchown(up.join("symlink"), Some(3), Some(4)).expect("lchown");
        xattr::set(up.join("dir/file"), "user.berth", b"value").expect("setxattr");
        xattr::set(up.join("dir/file"), "trusted.berth", b"trusted").expect("setxattr");
        nix::sys::stat::mknod(
            &up.join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .expect("mknod");
        nix::unistd::mkfifo(
            &up.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(up.join("dir/file"), old).expect("mtime");
        s.commit("base-c", "base").expect("commit");

        s.prepare("copy", Some("base-c")).expect("prepare");
        let c = s.upper_dir("copy").expect("upper");
        assert_ne!(c, up);
        let file = fs::symlink_metadata(c.join("dir/file")).expect("stat");
        assert_eq!(read(&c.join("dir/file")).as_deref(), Some("content"));
        assert_eq!(file.mode() & 0o7777, 0o4751);
        assert_eq!((file.uid(), file.gid()), (1000, 2000));
        assert_eq!(file.nlink(), 2);
        assert_eq!(file.mtime(), 1_000_000_000);
        let hard = fs::symlink_metadata(c.join("hardlink")).expect("stat");
        assert_eq!(hard.ino(), file.ino(), "hard link kept");
        assert_eq!(
            fs::symlink_metadata(c.join("dir")).expect("stat").mode() & 0o7777,
            0o1777
        );
        let link = fs::symlink_metadata(c.join("symlink")).expect("stat");
        assert!(link.file_type().is_symlink());
        assert_eq!(
            fs::read_link(c.join("symlink")).expect("readlink"),
            Path::new("dir/file")
        );
        assert_eq!((link.uid(), link.gid()), (3, 4));
        assert_eq!(
            xattr::get(c.join("dir/file"), "user.berth").expect("getxattr"),
            Some(b"value".to_vec())
        );
        assert_eq!(
            xattr::get(c.join("dir/file"), "trusted.berth").expect("getxattr"),
            Some(b"trusted".to_vec())
        );
        let null = fs::symlink_metadata(c.join("null")).expect("stat");
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
        assert!(fs::symlink_metadata(c.join("fifo"))
            .expect("stat")
            .file_type()
            .is_fifo());
        // The copy is independent of the committed parent.
        write(&c, "dir/file", "changed");
        assert_eq!(read(&up.join("dir/file")).as_deref(), Some("content"));
        let err = fs::metadata(c.join("missing")).expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}
