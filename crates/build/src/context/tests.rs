use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;
use crate::compression::tests::compress;

/// Builds tars with raw names (the tar crate refuses `..` in `append_data`).
pub(crate) struct TarMaker {
    builder: tar::Builder<Vec<u8>>,
}

impl TarMaker {
    pub(crate) fn new() -> Self {
        TarMaker {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn raw(&mut self, name: &str, kind: tar::EntryType, data: &[u8], link: &str, mode: u32) {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
    }

    pub(crate) fn file(mut self, name: &str, data: &[u8]) -> Self {
        self.raw(name, tar::EntryType::Regular, data, "", 0o640);
        self
    }

    pub(crate) fn dir(mut self, name: &str) -> Self {
        self.raw(name, tar::EntryType::Directory, b"", "", 0o750);
        self
    }

    pub(crate) fn symlink(mut self, name: &str, target: &str) -> Self {
        self.raw(name, tar::EntryType::Symlink, b"", target, 0o777);
        self
    }

    pub(crate) fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.raw(name, tar::EntryType::Link, b"", target, 0o640);
        self
    }

    fn fifo(mut self, name: &str) -> Self {
        self.raw(name, tar::EntryType::Fifo, b"", "", 0o644);
        self
    }

    fn with_xattr(mut self, name: &str, attr: &str, value: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        self.builder
            .append_pax_extensions([(format!("SCHILY.xattr.{attr}").as_str(), value)])
            .unwrap();
        self.builder.append_data(&mut h, name, &b"x"[..]).unwrap();
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// Receives `data`; a received context is also written out (into `ctx/files`), so that tests
/// can look at what COPY would see.
fn extract(data: &[u8], name: &str) -> (tempfile::TempDir, Result<Context, ContextError>) {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("ctx")).unwrap();
    let result = Context::extract(data, &tmp.path().join("ctx"), name);
    if let Ok(ctx) = &result {
        let dir = ctx.files().dir().unwrap();
        assert_eq!(dir, tmp.path().join("ctx/files"));
    }
    (tmp, result)
}

#[test]
fn receiving_writes_one_spool_file_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ctx");
    fs::create_dir(&dir).unwrap();
    let ctx = Context::extract(&basic()[..], &dir, "Dockerfile").unwrap();
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["spool"]);
    // The file contents, one after the other.
    assert_eq!(
        fs::read(dir.join("spool")).unwrap(),
        b"FROM scratch\nfn main() {}"
    );
    // Written out once, on demand.
    let files = ctx.files();
    assert_eq!(files.dir().unwrap(), dir.join("files"));
    fs::write(dir.join("files/marker"), "x").unwrap();
    assert_eq!(files.dir().unwrap(), dir.join("files"));
    assert!(dir.join("files/marker").exists(), "not written twice");
}

fn basic() -> Vec<u8> {
    TarMaker::new()
        .file("Dockerfile", b"FROM scratch\n")
        .dir("src/")
        .file("src/main.rs", b"fn main() {}")
        .symlink("src/link", "/etc/passwd")
        .hardlink("src/hard", "src/main.rs")
        .finish()
}

#[test]
fn extracts_files_with_their_metadata() {
    let (tmp, ctx) = extract(&basic(), "Dockerfile");
    let ctx = ctx.unwrap();
    let dir = tmp.path().join("ctx/files");
    assert_eq!(ctx.dockerfile(), b"FROM scratch\n");
    assert_eq!(ctx.dockerfile_path(), "Dockerfile");
    assert_eq!(ctx.compression(), Compression::None);
    let main = fs::metadata(dir.join("src/main.rs")).unwrap();
    assert_eq!(main.permissions().mode() & 0o7777, 0o640);
    assert_eq!((main.uid(), main.gid()), (1234, 5678));
    assert_eq!(main.mtime(), 1_600_000_000);
    let src = fs::metadata(dir.join("src")).unwrap();
    assert_eq!(src.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        src.mtime(),
        1_600_000_000,
        "directory time set after its children"
    );
    assert_eq!(
        fs::read_link(dir.join("src/link")).unwrap(),
        Path::new("/etc/passwd")
    );
    let hard = fs::metadata(dir.join("src/hard")).unwrap();
    assert_eq!(hard.ino(), main.ino());
    let stats = ctx.stats();
    assert_eq!(stats.entries, 5);
    assert_eq!(stats.bytes, 13 + 12);
    assert_eq!(stats.transferred, basic().len() as u64);
}

#[test]
fn xattrs_are_kept() {
    let data = TarMaker::new()
        .file("Dockerfile", b"FROM scratch\n")
        .with_xattr("f", "user.berth", b"v1")
        .finish();
    let (tmp, ctx) = extract(&data, "Dockerfile");
    ctx.unwrap();
    let file = fs::File::open(tmp.path().join("ctx/files/f")).unwrap();
    let xattrs = fsops::read_xattrs(std::os::fd::AsFd::as_fd(&file)).unwrap();
    assert_eq!(xattrs, vec![("user.berth".into(), b"v1".to_vec())]);
}

#[test]
fn every_compression_is_detected() {
    for how in [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let (tmp, ctx) = extract(&compress(&basic(), how), "Dockerfile");
        let ctx = ctx.unwrap();
        assert_eq!(ctx.compression(), how);
        assert_eq!(
            fs::read(tmp.path().join("ctx/files/src/main.rs")).unwrap(),
            b"fn main() {}"
        );
    }
}

#[test]
fn a_body_that_is_not_a_tar_is_the_dockerfile() {
    let (tmp, ctx) = extract(b"FROM busybox\nRUN true\n", "Dockerfile");
    let ctx = ctx.unwrap();
    assert_eq!(ctx.dockerfile(), b"FROM busybox\nRUN true\n");
    assert_eq!(
        fs::read_dir(tmp.path().join("ctx/files")).unwrap().count(),
        0
    );
    let (_tmp, err) = extract(b"", "Dockerfile");
    assert_eq!(
        err.unwrap_err().to_string(),
        "Cannot locate specified Dockerfile: Dockerfile"
    );
}

#[test]
fn dockerfile_lookup_follows_dockerd() {
    let data = TarMaker::new().file("dockerfile", b"FROM a\n").finish();
    let (_tmp, ctx) = extract(&data, "");
    assert_eq!(ctx.unwrap().dockerfile_path(), "dockerfile");
    let (_tmp, err) = extract(&data, "Other");
    assert_eq!(
        err.unwrap_err().to_string(),
        "Cannot locate specified Dockerfile: Other"
    );
    let (_tmp, err) = extract(&data, "../Dockerfile");
    assert_eq!(
        err.unwrap_err().to_string(),
        "forbidden path outside the build context: ../Dockerfile ()"
    );
    let data = TarMaker::new()
        .file("sub/Dockerfile.dev", b"FROM b\n")
        .file("Dockerfile", b"")
        .finish();
    let (_tmp, ctx) = extract(&data, "/sub/./Dockerfile.dev");
    assert_eq!(ctx.unwrap().dockerfile(), b"FROM b\n");
    let (_tmp, err) = extract(&data, "Dockerfile");
    assert_eq!(
        err.unwrap_err().to_string(),
        "the Dockerfile (Dockerfile) cannot be empty"
    );
}

#[test]
fn a_dockerfile_symlink_resolves_inside_the_context() {
    let data = TarMaker::new()
        .symlink("Dockerfile", "/etc/hostname")
        .file("etc/hostname", b"FROM inside\n")
        .finish();
    let (_tmp, ctx) = extract(&data, "Dockerfile");
    assert_eq!(ctx.unwrap().dockerfile(), b"FROM inside\n");
    let data = TarMaker::new()
        .symlink("Dockerfile", "../../../../../../etc/passwd")
        .finish();
    let (_tmp, err) = extract(&data, "Dockerfile");
    assert!(matches!(err, Err(ContextError::DockerfileNotFound { .. })));
}

#[test]
fn dot_dot_entries_are_refused() {
    let data = TarMaker::new()
        .file("Dockerfile", b"FROM a\n")
        .file("../escaped", b"x")
        .finish();
    let (tmp, err) = extract(&data, "Dockerfile");
    assert!(matches!(
        err,
        Err(ContextError::Unpack(UnpackError::Escape { .. }))
    ));
    assert!(!tmp.path().join("escaped").exists());
}

#[test]
fn absolute_entries_land_inside() {
    let data = TarMaker::new()
        .file("Dockerfile", b"FROM a\n")
        .file("/etc/berth-test-absolute", b"x")
        .finish();
    let (tmp, ctx) = extract(&data, "Dockerfile");
    ctx.unwrap();
    assert!(tmp
        .path()
        .join("ctx/files/etc/berth-test-absolute")
        .is_file());
    assert!(!Path::new("/etc/berth-test-absolute").exists());
}

#[test]
fn a_symlinked_parent_is_never_written_through() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    for link in ["/", target.as_str(), "../.."] {
        let data = TarMaker::new()
            .file("Dockerfile", b"FROM a\n")
            .symlink("a", link)
            .file("a/x", b"pwned")
            .finish();
        let (tmp, err) = extract(&data, "Dockerfile");
        assert!(
            matches!(
                err,
                Err(ContextError::Unpack(UnpackError::NotADirectory { .. }))
            ),
            "{link}: {err:?}"
        );
        assert!(!Path::new("/x").exists());
        assert!(!outside.path().join("x").exists());
        assert!(!tmp.path().join("x").exists());
    }
}

#[test]
fn hardlinks_must_stay_inside() {
    for target in ["/etc/passwd", "../x", "a/../../x", "missing"] {
        let data = TarMaker::new()
            .file("Dockerfile", b"FROM a\n")
            .hardlink("h", target)
            .finish();
        let (tmp, err) = extract(&data, "Dockerfile");
        assert!(
            matches!(err, Err(ContextError::Unpack(UnpackError::Hardlink { .. }))),
            "{target}: {err:?}"
        );
        assert!(!tmp.path().join("ctx/files/h").exists());
    }
    // Through a symlink to outside: refused too.
    let data = TarMaker::new()
        .file("Dockerfile", b"FROM a\n")
        .symlink("etc", "/etc")
        .hardlink("h", "etc/passwd")
        .finish();
    let (tmp, err) = extract(&data, "Dockerfile");
    assert!(matches!(
        err,
        Err(ContextError::Unpack(UnpackError::Hardlink { .. }))
    ));
    assert!(!tmp.path().join("ctx/files/h").exists());
}

#[test]
fn fifos_and_devices_are_skipped() {
    let data = TarMaker::new()
        .file("Dockerfile", b"FROM a\n")
        .fifo("pipe")
        .finish();
    let (tmp, ctx) = extract(&data, "Dockerfile");
    assert_eq!(ctx.unwrap().stats().skipped, 1);
    assert!(fs::symlink_metadata(tmp.path().join("ctx/files/pipe")).is_err());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let data = TarMaker::new()
        .file("Dockerfile", b"FROM a\n")
        .symlink("f", "/etc/shadow")
        .file("f", b"plain")
        .finish();
    let (tmp, ctx) = extract(&data, "Dockerfile");
    ctx.unwrap();
    let f = tmp.path().join("ctx/files/f");
    assert!(fs::symlink_metadata(&f).unwrap().is_file());
    assert_eq!(fs::read(&f).unwrap(), b"plain");
}

#[test]
fn dockerignore_removes_paths_but_the_builder_keeps_its_files() {
    let data = TarMaker::new()
        .file("Dockerfile", b"FROM a\n")
        .file(
            ".dockerignore",
            b"Dockerfile\n.dockerignore\n*.log\nnode_modules\nbuild\n!build/keep\n",
        )
        .file("app.log", b"x")
        .file("app.rs", b"x")
        .file("node_modules/a/b.js", b"x")
        .file("build/drop", b"x")
        .file("build/keep", b"x")
        .finish();
    let (tmp, ctx) = extract(&data, "Dockerfile");
    let ctx = ctx.unwrap();
    let dir = tmp.path().join("ctx/files");
    assert_eq!(ctx.dockerfile(), b"FROM a\n");
    assert_eq!(ctx.ignore_file(), Some(".dockerignore"));
    for gone in [
        "Dockerfile",
        ".dockerignore",
        "app.log",
        "node_modules",
        "build/drop",
    ] {
        assert!(fs::symlink_metadata(dir.join(gone)).is_err(), "{gone}");
    }
    for kept in ["app.rs", "build/keep"] {
        assert!(dir.join(kept).is_file(), "{kept}");
    }
    assert_eq!(ctx.stats().ignored, 5);
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let data = TarMaker::new()
        .file("sub/app.Dockerfile", b"FROM a\n")
        .file("sub/app.Dockerfile.dockerignore", b"b\n")
        .file(".dockerignore", b"a\n")
        .file("a", b"x")
        .file("b", b"x")
        .finish();
    let (tmp, ctx) = extract(&data, "sub/app.Dockerfile");
    let ctx = ctx.unwrap();
    assert_eq!(ctx.ignore_file(), Some("sub/app.Dockerfile.dockerignore"));
    assert!(tmp.path().join("ctx/files/a").exists());
    assert!(!tmp.path().join("ctx/files/b").exists());
}

#[test]
fn ten_thousand_entries_stream_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let tar_path = tmp.path().join("ctx.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(7);
        h.set_mode(0o644);
        b.append_data(&mut h.clone(), "Dockerfile", &b"FROM a\n"[..])
            .unwrap();
        for i in 0..10_000 {
            b.append_data(&mut h, format!("d{}/f{i}", i % 100), &b"content"[..])
                .unwrap();
        }
        b.into_inner().unwrap();
    }
    fs::create_dir(tmp.path().join("ctx")).unwrap();
    let ctx = Context::extract(
        fs::File::open(&tar_path).unwrap(),
        &tmp.path().join("ctx"),
        "Dockerfile",
    )
    .unwrap();
    ctx.files().dir().unwrap();
    assert_eq!(ctx.stats().entries, 10_001);
    assert_eq!(ctx.stats().bytes, 10_001 * 7);
    assert_eq!(
        fs::read(tmp.path().join("ctx/files/d42/f9942")).unwrap(),
        b"content"
    );
}

#[test]
fn pack_dir_round_trips_deterministically_and_honours_dockerignore() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub/deep")).unwrap();
    fs::create_dir_all(src.join("ignored/inner")).unwrap();
    fs::write(src.join("Dockerfile"), "FROM a\n").unwrap();
    fs::write(src.join("sub/deep/f"), "data").unwrap();
    fs::set_permissions(src.join("sub/deep/f"), fs::Permissions::from_mode(0o751)).unwrap();
    fs::hard_link(src.join("sub/deep/f"), src.join("sub/h")).unwrap();
    std::os::unix::fs::symlink("../Dockerfile", src.join("sub/l")).unwrap();
    fs::write(src.join("ignored/inner/x"), "x").unwrap();
    fs::write(src.join("ignored/keep"), "k").unwrap();
    fs::write(src.join("a.log"), "x").unwrap();
    let ignore = Matcher::from_dockerignore("*.log\nignored\n!ignored/keep\n").unwrap();
    let mut first = Vec::new();
    pack_dir(&src, &ignore, &mut first).unwrap();
    let mut second = Vec::new();
    pack_dir(&src, &ignore, &mut second).unwrap();
    assert_eq!(first, second);

    let mut names = Vec::new();
    for entry in tar::Archive::new(&first[..]).entries().unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.header().uid().unwrap(), 0);
        names.push(entry.path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(
        names,
        [
            "Dockerfile",
            "ignored/keep",
            "sub/",
            "sub/deep/",
            "sub/deep/f",
            "sub/h",
            "sub/l"
        ]
    );

    let (out, ctx) = extract(&first, "Dockerfile");
    ctx.unwrap();
    let dir = out.path().join("ctx/files");
    assert_eq!(fs::read(dir.join("sub/deep/f")).unwrap(), b"data");
    let f = fs::metadata(dir.join("sub/deep/f")).unwrap();
    assert_eq!(f.permissions().mode() & 0o7777, 0o751);
    assert_eq!(f.ino(), fs::metadata(dir.join("sub/h")).unwrap().ino());
    assert_eq!(
        fs::read_link(dir.join("sub/l")).unwrap(),
        Path::new("../Dockerfile")
    );
    assert_eq!(fs::read(dir.join("ignored/keep")).unwrap(), b"k");
}

#[test]
fn a_tar_ending_right_after_its_last_data_is_whole_and_one_ending_inside_it_is_not() {
    // The docker CLI, adding a Dockerfile from outside the context, sends the last entry's
    // data without its padding and without the end blocks: Go's tar reader takes that as the
    // end of the archive, and so does this one.
    let full = TarMaker::new()
        .file("Dockerfile", b"FROM scratch\n")
        .file(".dockerignore", b"secret\n")
        .finish();
    // Two headers and two data blocks; the second data is 7 bytes.
    let cut = 512 * 3 + 7;
    let (tmp, ctx) = extract(&full[..cut], "Dockerfile");
    ctx.unwrap();
    assert_eq!(
        fs::read(tmp.path().join("ctx/files/.dockerignore")).unwrap(),
        b"secret\n"
    );
    // Cut inside the data: an error, not a file filled with zeros.
    let (_tmp, ctx) = extract(&full[..512 * 3 + 3], "Dockerfile");
    assert!(ctx.is_err());
}
