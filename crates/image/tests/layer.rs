//! Layer apply/diff tests against the real filesystem (run as root: ownership, devices, trusted.*
//! xattrs and overlayfs).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::digest::Digest;
use berth_image::layer::{apply, apply_with, diff_upper, LayerError, Whiteouts};
use tar::{EntryType, Header};

/// Builds layer tars entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

const MTIME: u64 = 1_600_000_000;

impl Layer {
    fn new() -> Self {
        Layer(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, uid: u64, gid: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(EntryType::Directory, mode, 0, 0);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Self {
        self.file_owned(path, data, 0o644, 0, 0)
    }

    fn file_owned(mut self, path: &str, data: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = Self::header(EntryType::Regular, mode, uid, gid);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn link(mut self, kind: EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn device(mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, 0o620, 0, 5);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }

    /// An entry whose name is written as is (the tar crate refuses `..` in `set_path`).
    fn raw(mut self, kind: EntryType, name: &str, link: Option<&str>, data: &[u8]) -> Self {
        let mut h = Self::header(kind, 0o644, 0, 0);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn meta(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A parent directory holding the layer directory `layer/`, so that tests can check nothing
/// appears next to it.
struct Sandbox {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    layer: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let layer = base.join("layer");
        fs::create_dir(&layer).unwrap();
        Sandbox {
            _tmp: tmp,
            base,
            layer,
        }
    }

    fn siblings(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn every_entry_type_round_trips() {
    let long = format!("deep/{}/file", "n".repeat(120));
    let tar = Layer::new()
        .dir("etc", 0o750)
        .pax(&[
            ("SCHILY.xattr.trusted.berth", b"yes"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/evil"),
        ])
        .file_owned("etc/passwd", b"root:x:0:0\n", 0o4755, 1000, 1001)
        .dir("tmp", 0o1777)
        .link(EntryType::Symlink, "etc/link", "passwd")
        .link(EntryType::Link, "etc/hard", "etc/passwd")
        .device(EntryType::Char, "dev/null", 1, 3)
        .device(EntryType::Block, "dev/loop0", 7, 0)
        .pax(&[("mtime", b"1500000000.25")])
        .device(EntryType::Fifo, "run/fifo", 0, 0)
        .raw(
            EntryType::Regular,
            "/abs/file",
            None,
            b"absolute names are made relative",
        )
        .file(&long, b"long name")
        .finish();
    let sb = Sandbox::new();
    let root = &sb.layer;
    let applied = apply(&tar[..], root).unwrap();
    assert_eq!(applied.diff_id, Digest::of(&tar));
    assert_eq!(applied.size, tar.len() as u64);

    let etc = meta(&root.join("etc"));
    assert!(etc.is_dir());
    assert_eq!(etc.mode() & 0o7777, 0o750);
    assert_eq!(
        etc.mtime(),
        MTIME as i64,
        "dir mtime is set after its children"
    );

    let passwd = meta(&root.join("etc/passwd"));
    assert!(passwd.is_file());
    assert_eq!(passwd.mode() & 0o7777, 0o4755, "setuid survives chown");
    assert_eq!((passwd.uid(), passwd.gid()), (1000, 1001));
    assert_eq!(passwd.mtime(), MTIME as i64);
    assert_eq!(passwd.nlink(), 2);
    assert_eq!(fs::read(root.join("etc/passwd")).unwrap(), b"root:x:0:0\n");
    assert_eq!(
        xattr::get(root.join("etc/passwd"), "trusted.berth").unwrap(),
        Some(b"yes".to_vec())
    );
    assert_eq!(
        xattr::get(root.join("etc/passwd"), "trusted.overlay.redirect").unwrap(),
        None,
        "overlay's own xattrs are never taken from a layer"
    );
    assert_eq!(meta(&root.join("etc/hard")).ino(), passwd.ino());

    assert_eq!(meta(&root.join("tmp")).mode() & 0o7777, 0o1777);
    assert_eq!(
        fs::read_link(root.join("etc/link")).unwrap(),
        Path::new("passwd")
    );
    let null = meta(&root.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o620);
    assert_eq!(null.gid(), 5);
    let loop0 = meta(&root.join("dev/loop0"));
    assert!(loop0.file_type().is_block_device());
    assert_eq!(loop0.rdev(), rustix::fs::makedev(7, 0));
    let fifo = meta(&root.join("run/fifo"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mtime(), 1_500_000_000);
    assert_eq!(fifo.mtime_nsec(), 250_000_000, "PAX mtime with fraction");
    assert!(meta(&root.join("abs/file")).is_file());
    assert_eq!(fs::read(root.join(&long)).unwrap(), b"long name");
    assert_eq!(sb.siblings(), ["layer"]);
}

#[test]
fn whiteout_and_opaque_become_overlay_form() {
    let tar = Layer::new()
        .dir("a", 0o755)
        .file("a/.wh.gone", b"")
        .dir("b", 0o755)
        .file("b/.wh..wh..opq", b"")
        .file("b/keep", b"k")
        .file(".wh..wh.plnk", b"")
        .finish();
    let sb = Sandbox::new();
    apply(&tar[..], &sb.layer).unwrap();
    let gone = meta(&sb.layer.join("a/gone"));
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert_eq!(
        xattr::get(sb.layer.join("b"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(meta(&sb.layer.join("b/keep")).is_file());
    for name in ["a/.wh.gone", "b/.wh..wh..opq", ".wh..wh.plnk", "plnk"] {
        assert!(!sb.layer.join(name).exists(), "{name} must not exist");
    }
}

#[test]
fn whiteout_replaces_an_earlier_entry() {
    let tar = Layer::new().file("d/f", b"x").file(".wh.d", b"").finish();
    let sb = Sandbox::new();
    apply(&tar[..], &sb.layer).unwrap();
    let d = meta(&sb.layer.join("d"));
    assert!(d.file_type().is_char_device());
    assert_eq!(d.rdev(), 0);
}

#[test]
fn compressed_layers_give_the_same_diff_id() {
    let tar = Layer::new()
        .dir("usr", 0o755)
        .file("usr/data", &vec![7u8; 100_000])
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let mut ids = Vec::new();
    for blob in [&tar, &gz, &zst] {
        let sb = Sandbox::new();
        let applied = apply(&blob[..], &sb.layer).unwrap();
        assert_eq!(applied.size, tar.len() as u64);
        assert_eq!(fs::read(sb.layer.join("usr/data")).unwrap().len(), 100_000);
        ids.push(applied.diff_id);
    }
    assert_eq!(ids[0], Digest::of(&tar));
    assert_eq!(ids[1], ids[0]);
    assert_eq!(ids[2], ids[0]);
}

#[test]
fn diff_id_covers_trailing_padding() {
    let mut tar = Layer::new().file("f", b"x").finish();
    tar.extend_from_slice(&[0u8; 4096]);
    let sb = Sandbox::new();
    let applied = apply(&tar[..], &sb.layer).unwrap();
    assert_eq!(applied.diff_id, Digest::of(&tar));
    assert_eq!(applied.size, tar.len() as u64);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tar = Layer::new()
        .file("x", b"file")
        .dir("x", 0o700)
        .file("x/y", b"y")
        .file("d/f", b"f")
        .file("d", b"now a file")
        .link(EntryType::Symlink, "s", "/etc/passwd")
        .file("s", b"not a link")
        .dir("k", 0o700)
        .file("k/kept", b"")
        .dir("k", 0o755)
        .finish();
    let sb = Sandbox::new();
    apply(&tar[..], &sb.layer).unwrap();
    assert!(meta(&sb.layer.join("x")).is_dir());
    assert_eq!(fs::read(sb.layer.join("x/y")).unwrap(), b"y");
    assert_eq!(fs::read(sb.layer.join("d")).unwrap(), b"now a file");
    assert!(meta(&sb.layer.join("s")).is_file());
    assert_eq!(fs::read(sb.layer.join("s")).unwrap(), b"not a link");
    assert!(
        sb.layer.join("k/kept").exists(),
        "a dir over a dir keeps its contents"
    );
    assert_eq!(meta(&sb.layer.join("k")).mode() & 0o7777, 0o755);
}

fn expect_rejected(tar: Vec<u8>, sb: &Sandbox) -> LayerError {
    let err = apply(&tar[..], &sb.layer).expect_err("malicious layer must be rejected");
    assert_eq!(
        sb.siblings(),
        ["layer"],
        "nothing may appear next to the layer dir"
    );
    err
}

#[test]
fn dotdot_escape_is_rejected() {
    for name in ["../escape", "a/../../escape", "./../escape"] {
        let sb = Sandbox::new();
        let err = expect_rejected(
            Layer::new()
                .raw(EntryType::Regular, name, None, b"x")
                .finish(),
            &sb,
        );
        assert!(
            matches!(err, LayerError::PathEscape { ref entry } if entry == name),
            "{err}"
        );
        assert!(
            err.to_string().contains("escapes the layer directory"),
            "{err}"
        );
    }
}

#[test]
fn absolute_escape_is_rejected() {
    let sb = Sandbox::new();
    let err = expect_rejected(
        Layer::new()
            .raw(EntryType::Regular, "/../../escape", None, b"x")
            .finish(),
        &sb,
    );
    assert!(matches!(err, LayerError::PathEscape { .. }), "{err}");
}

#[test]
fn file_through_a_symlink_is_rejected() {
    let sb = Sandbox::new();
    let outside = sb.base.join("outside");
    fs::create_dir(&outside).unwrap();
    let tar = Layer::new()
        .link(EntryType::Symlink, "link", outside.to_str().unwrap())
        .file("link/file", b"pwned")
        .finish();
    let err = apply(&tar[..], &sb.layer).expect_err("must be rejected");
    assert!(
        matches!(err, LayerError::SymlinkInPath { ref symlink, .. } if symlink == "link"),
        "{err}"
    );
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    // The same through a relative symlink that climbs out, and a directory made through one.
    let sb = Sandbox::new();
    let tar = Layer::new()
        .link(EntryType::Symlink, "up", "../..")
        .dir("up/made", 0o755)
        .finish();
    let err = expect_rejected(tar, &sb);
    assert!(matches!(err, LayerError::SymlinkInPath { .. }), "{err}");
}

#[test]
fn hardlink_to_outside_is_rejected() {
    let sb = Sandbox::new();
    let secret = sb.base.join("secret");
    fs::write(&secret, b"s").unwrap();
    let tar = Layer::new()
        .raw(EntryType::Link, "hard", Some("../secret"), b"")
        .finish();
    let err = apply(&tar[..], &sb.layer).expect_err("must be rejected");
    assert!(matches!(err, LayerError::HardlinkEscape { .. }), "{err}");
    assert!(
        err.to_string().contains("outside the layer directory"),
        "{err}"
    );
    assert_eq!(meta(&secret).nlink(), 1);
    assert!(!sb.layer.join("hard").exists());

    // Nor through a symlink inside the layer.
    let sb = Sandbox::new();
    fs::write(sb.base.join("secret"), b"s").unwrap();
    let tar = Layer::new()
        .link(EntryType::Symlink, "up", "..")
        .link(EntryType::Link, "hard", "up/secret")
        .finish();
    let err = apply(&tar[..], &sb.layer).expect_err("must be rejected");
    assert!(matches!(err, LayerError::SymlinkInPath { .. }), "{err}");
    assert_eq!(meta(&sb.base.join("secret")).nlink(), 1);
}

#[test]
fn truncated_layer_fails() {
    let tar = Layer::new()
        .file("small", b"s")
        .file("big", &vec![1u8; 10_000])
        .finish();
    // Cut inside the data of `big`, then inside its header.
    for cut in [4096, 1024 + 100] {
        let sb = Sandbox::new();
        let err = apply(&tar[..cut], &sb.layer).expect_err("truncated layer must fail");
        assert!(
            matches!(err, LayerError::Truncated { .. } | LayerError::Read(_)),
            "{err}"
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let sb = Sandbox::new();
    assert!(apply(&gz[..gz.len() / 2], &sb.layer).is_err());
}

/// Type, permissions, owner, mtime, contents or target, device and xattrs of every path below
/// `root`, sorted.
fn snapshot(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let rel = rel.join(name);
            let full = root.join(&rel);
            let m = meta(&full);
            let mut attrs: Vec<String> = xattr::list(&full)
                .unwrap()
                .map(|a| {
                    let v = xattr::get(&full, &a).unwrap().unwrap_or_default();
                    format!("{}={}", a.to_string_lossy(), String::from_utf8_lossy(&v))
                })
                .collect();
            attrs.sort();
            let what = if m.is_file() {
                format!(
                    "file {:?}",
                    String::from_utf8_lossy(&fs::read(&full).unwrap())
                )
            } else if m.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(&full).unwrap())
            } else {
                format!("rdev {}", m.rdev())
            };
            out.push(format!(
                "{} {:o} {}:{} t{} n{} {} {:?}",
                rel.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                m.mtime(),
                m.nlink(),
                what,
                attrs
            ));
            if m.is_dir() {
                walk(root, &rel, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn set_mtime(path: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

#[test]
fn diff_upper_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("etc/opaque")).unwrap();
    fs::create_dir_all(upper.join("bin")).unwrap();
    fs::write(upper.join("etc/conf"), b"conf").unwrap();
    fs::set_permissions(upper.join("etc/conf"), fs::Permissions::from_mode(0o2640)).unwrap();
    std::os::unix::fs::chown(upper.join("etc/conf"), Some(33), Some(44)).unwrap();
    xattr::set(upper.join("etc/conf"), "trusted.berth", b"1").unwrap();
    fs::write(upper.join("etc/opaque/new"), b"new").unwrap();
    xattr::set(upper.join("etc/opaque"), "trusted.overlay.opaque", b"y").unwrap();
    fs::write(upper.join("bin/tool"), b"#!").unwrap();
    fs::hard_link(upper.join("bin/tool"), upper.join("bin/alias")).unwrap();
    std::os::unix::fs::symlink("tool", upper.join("bin/link")).unwrap();
    nix::sys::stat::mknod(
        &upper.join("etc/removed"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    nix::unistd::mkfifo(
        &upper.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    for (i, p) in [
        "etc/conf",
        "etc/opaque/new",
        "etc/opaque",
        "bin/tool",
        "bin/link",
        "etc/removed",
        "fifo",
        "bin",
        "etc",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&upper.join(p), 1_000_000 + i as i64);
    }

    let mut tar = Vec::new();
    let diff_id = diff_upper(&upper, &mut tar).unwrap();
    assert_eq!(diff_id, Digest::of(&tar));
    let mut again = Vec::new();
    assert_eq!(
        diff_upper(&upper, &mut again).unwrap(),
        diff_id,
        "deterministic"
    );

    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for r in pax {
                assert!(!r.unwrap().key().unwrap().contains("overlay"), "{name}");
            }
        }
        let kind = entry.header().entry_type();
        names.push(format!("{name} {kind:?}"));
    }
    assert_eq!(
        names,
        [
            "bin Directory",
            "bin/alias Regular",
            "bin/link Symlink",
            "bin/tool Link",
            "etc Directory",
            "etc/conf Regular",
            "etc/opaque Directory",
            "etc/opaque/.wh..wh..opq Regular",
            "etc/opaque/new Regular",
            "etc/.wh.removed Regular",
            "fifo Fifo",
        ]
    );

    let fresh = tmp.path().join("fresh");
    fs::create_dir(&fresh).unwrap();
    let applied = apply(&tar[..], &fresh).unwrap();
    assert_eq!(applied.diff_id, diff_id);
    assert_eq!(snapshot(&fresh), snapshot(&upper));
}

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn overlay_merged_view_hides_whited_out_files() {
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged] =
        ["lower", "upper", "work", "merged"].map(|n| tmp.path().join(n));
    for d in [&lower, &upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    let layer1 = Layer::new()
        .file("a", b"a")
        .file("keep", b"keep")
        .dir("dir", 0o755)
        .file("dir/old", b"old")
        .finish();
    let layer2 = Layer::new()
        .file(".wh.a", b"")
        .dir("dir", 0o755)
        .file("dir/.wh..wh..opq", b"")
        .file("dir/new", b"new")
        .finish();
    apply(&layer1[..], &lower).unwrap();
    apply(&layer2[..], &upper).unwrap();
    // The layer's own upper is used read-only as a second lower; the container gets a fresh one.
    let opts = format!("lowerdir={}:{}", upper.display(), lower.display());
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    let guard = Mounted(merged.clone());
    assert!(!merged.join("a").exists(), "whited-out file is hidden");
    assert_eq!(fs::read(merged.join("keep")).unwrap(), b"keep");
    let mut dir: Vec<_> = fs::read_dir(merged.join("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    dir.sort();
    assert_eq!(dir, ["new"], "opaque dir hides the lower contents");
    drop(guard);

    // A container's changes, made through a real overlay mount, come back as a layer.
    let cupper = tmp.path().join("cupper");
    fs::create_dir(&cupper).unwrap();
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        upper.display(),
        lower.display(),
        cupper.display(),
        work.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(opts.as_str()),
    )
    .unwrap();
    let guard = Mounted(merged.clone());
    fs::remove_file(merged.join("keep")).unwrap();
    fs::write(merged.join("added"), b"added").unwrap();
    drop(guard);
    let mut tar = Vec::new();
    diff_upper(&cupper, &mut tar).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    // Sorted by the name on disk: the whiteout of `keep` comes after `added`.
    assert_eq!(names, ["added", ".wh.keep"]);
}

#[test]
fn pax_owner_and_link_xattrs() {
    let tar = Layer::new()
        .pax(&[("uid", b"3000000"), ("gid", b"3000001")])
        .file("big-ids", b"x")
        .pax(&[("SCHILY.xattr.trusted.onlink", b"v")])
        .link(EntryType::Symlink, "sym", "/nowhere")
        .finish();
    let sb = Sandbox::new();
    apply(&tar[..], &sb.layer).unwrap();
    let m = meta(&sb.layer.join("big-ids"));
    assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
    assert_eq!(
        xattr::get(sb.layer.join("sym"), "trusted.onlink").unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(meta(&sb.layer.join("sym")).mtime(), MTIME as i64);
}

#[test]
fn many_entries_in_many_directories() {
    let mut layer = Layer::new();
    for d in 0..20 {
        layer = layer.dir(&format!("usr/share/d{d}"), 0o755);
        for f in 0..100 {
            layer = layer.file(&format!("usr/share/d{d}/f{f}"), b"data");
        }
        layer = layer.file(&format!("usr/share/f{d}"), b"between");
    }
    let tar = layer.finish();
    let sb = Sandbox::new();
    apply(&tar[..], &sb.layer).unwrap();
    for d in 0..20 {
        let dir = sb.layer.join(format!("usr/share/d{d}"));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 100);
        assert_eq!(meta(&dir).mtime(), MTIME as i64);
    }
}

#[test]
fn a_directory_replaced_by_a_symlink_is_not_written_through() {
    let sb = Sandbox::new();
    let outside = sb.base.join("outside");
    fs::create_dir(&outside).unwrap();
    let tar = Layer::new()
        .dir("p", 0o755)
        .file("p/a", b"a")
        .link(EntryType::Symlink, "p", outside.to_str().unwrap())
        .file("p/b", b"pwned")
        .finish();
    let err = apply(&tar[..], &sb.layer).expect_err("must be rejected");
    assert!(matches!(err, LayerError::SymlinkInPath { .. }), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    let sb = Sandbox::new();
    let tar = Layer::new()
        .file("d/a", b"a")
        .file("d", b"file now")
        .file("d/b", b"b")
        .finish();
    let err = apply(&tar[..], &sb.layer).expect_err("must be rejected");
    assert!(matches!(err, LayerError::NotADirectory { .. }), "{err}");
}

#[test]
fn delete_mode_carries_whiteouts_out_on_a_full_copy() {
    // The copy snapshotter applies a layer onto a copy of the tree below it: whiteouts remove,
    // and an opaque directory keeps only what this layer wrote into it.
    let lower = Layer::new()
        .dir("a", 0o755)
        .file("a/gone", b"old")
        .file("a/stays", b"old")
        .dir("b", 0o755)
        .file("b/old1", b"old")
        .file("b/old2", b"old")
        .finish();
    let sb = Sandbox::new();
    apply_with(&lower[..], &sb.layer, Whiteouts::Delete).unwrap();
    let upper = Layer::new()
        .dir("b", 0o755)
        .file("b/new", b"new")
        .file("b/.wh..wh..opq", b"")
        .file("a/.wh.gone", b"")
        .finish();
    apply_with(&upper[..], &sb.layer, Whiteouts::Delete).unwrap();
    assert!(!sb.layer.join("a/gone").exists());
    assert!(sb.layer.join("a/stays").is_file());
    assert!(sb.layer.join("b/new").is_file());
    assert!(!sb.layer.join("b/old1").exists() && !sb.layer.join("b/old2").exists());
    assert!(xattr::get(sb.layer.join("b"), "trusted.overlay.opaque")
        .unwrap()
        .is_none());
    for marker in ["a/.wh.gone", "b/.wh..wh..opq"] {
        assert!(!sb.layer.join(marker).exists(), "{marker}");
    }
}
