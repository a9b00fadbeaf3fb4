use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::*;
use crate::compression::tests::compress;
use crate::compression::Compression;
use crate::context::tests::TarMaker;

struct Roots {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    dst: PathBuf,
    outside: PathBuf,
}

fn roots() -> Roots {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    let outside = tmp.path().join("outside");
    for d in [&src, &dst, &outside] {
        fs::create_dir(d).unwrap();
    }
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::write(src.join("a.txt"), "a").unwrap();
    fs::write(src.join("b.txt"), "b").unwrap();
    fs::write(src.join("dir/one"), "1").unwrap();
    fs::write(src.join("dir/sub/two"), "22").unwrap();
    fs::set_permissions(src.join("dir/one"), fs::Permissions::from_mode(0o751)).unwrap();
    symlink("sub/two", src.join("dir/link")).unwrap();
    for p in ["a.txt", "dir/one", "dir/sub"] {
        std::os::unix::fs::lchown(src.join(p), Some(1000), Some(1000)).unwrap();
    }
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    fs::File::options()
        .write(true)
        .open(src.join("dir/one"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    Roots {
        _tmp: tmp,
        src,
        dst,
        outside,
    }
}

fn s(sources: &[&str]) -> Vec<String> {
    sources.iter().map(|s| s.to_string()).collect()
}

fn run<'a>(
    r: &Roots,
    sources: &'a [String],
    dest: &'a str,
    f: impl Fn(&mut CopyRequest<'a>),
) -> Result<CopyStats, CopyError> {
    let mut req = CopyRequest::new("COPY");
    req.sources = sources;
    req.dest = dest;
    f(&mut req);
    copy(SourceRoot::Dir(&r.src), &r.dst, &req)
}

fn plain(_: &mut CopyRequest<'_>) {}

#[test]
fn a_file_goes_to_or_into_the_destination() {
    let r = roots();
    run(&r, &s(&["a.txt"]), "/x/y/", plain).unwrap();
    assert_eq!(fs::read(r.dst.join("x/y/a.txt")).unwrap(), b"a");
    run(&r, &s(&["a.txt"]), "/renamed", plain).unwrap();
    assert_eq!(fs::read(r.dst.join("renamed")).unwrap(), b"a");
    // An existing directory without the slash.
    run(&r, &s(&["b.txt"]), "/x", plain).unwrap();
    assert_eq!(fs::read(r.dst.join("x/b.txt")).unwrap(), b"b");
    let created = fs::metadata(r.dst.join("x/y")).unwrap();
    assert_eq!(created.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn a_directory_copies_its_contents_with_metadata() {
    let r = roots();
    let stats = run(&r, &s(&["dir"]), "/app", plain).unwrap();
    assert_eq!((stats.files, stats.symlinks), (2, 1));
    let one = fs::metadata(r.dst.join("app/one")).unwrap();
    assert_eq!(one.permissions().mode() & 0o7777, 0o751);
    assert_eq!(
        (one.uid(), one.gid()),
        (0, 0),
        "COPY without --chown is 0:0"
    );
    assert_eq!(one.mtime(), 1_500_000_000, "the source mtime is kept");
    assert_eq!(fs::read(r.dst.join("app/sub/two")).unwrap(), b"22");
    assert_eq!(
        fs::read_link(r.dst.join("app/link")).unwrap(),
        Path::new("sub/two")
    );
    assert!(
        !r.dst.join("app/dir").exists(),
        "the contents, not the directory"
    );
    let sub_src = fs::metadata(r.src.join("dir/sub")).unwrap();
    let sub = fs::metadata(r.dst.join("app/sub")).unwrap();
    assert_eq!(sub.mtime(), sub_src.mtime());
}

#[test]
fn several_sources_need_a_directory_destination() {
    let r = roots();
    let err = run(&r, &s(&["a.txt", "b.txt"]), "/one", plain).unwrap_err();
    assert_eq!(
        err.to_string(),
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    let err = run(&r, &s(&["*.txt"]), "/one", plain).unwrap_err();
    assert!(matches!(err, CopyError::MultipleSources { .. }));
    run(&r, &s(&["*.txt"]), "/many/", plain).unwrap();
    assert!(r.dst.join("many/a.txt").is_file() && r.dst.join("many/b.txt").is_file());
    let err = run(&r, &s(&["nope"]), "/", plain).unwrap_err();
    assert_eq!(
        format!("COPY failed: {err}"),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat nope: file does not exist"
    );
}

#[test]
fn parents_and_excludes() {
    let r = roots();
    run(&r, &s(&["dir/sub/two", "a.txt"]), "/p/", |q| {
        q.parents = true
    })
    .unwrap();
    assert!(r.dst.join("p/dir/sub/two").is_file());
    assert!(r.dst.join("p/a.txt").is_file());
    run(&r, &s(&["./dir/./sub/two"]), "/q/", |q| q.parents = true).unwrap();
    assert!(r.dst.join("q/sub/two").is_file());
    assert!(!r.dst.join("q/dir").exists());
    let excludes = vec!["sub".to_string(), "b.*".to_string()];
    run(&r, &s(&["dir", "*.txt"]), "/e/", |q| q.excludes = &excludes).unwrap();
    assert!(r.dst.join("e/one").is_file());
    assert!(r.dst.join("e/a.txt").is_file());
    assert!(!r.dst.join("e/sub").exists());
    assert!(!r.dst.join("e/b.txt").exists());
}

#[test]
fn chown_and_chmod() {
    let r = roots();
    fs::create_dir(r.dst.join("etc")).unwrap();
    fs::write(r.dst.join("etc/passwd"), "app:x:1001:1002::/:/bin/sh\n").unwrap();
    fs::write(r.dst.join("etc/group"), "staff:x:50:\n").unwrap();
    fs::create_dir(r.dst.join("existing")).unwrap();
    run(&r, &s(&["dir"]), "/existing/new/", |q| {
        q.chown = Some("app");
        q.chmod = Some("700");
    })
    .unwrap();
    let owner = |p: &str| {
        let m = fs::symlink_metadata(r.dst.join(p)).unwrap();
        (m.uid(), m.gid(), m.permissions().mode() & 0o7777)
    };
    assert_eq!(owner("existing/new/one"), (1001, 1002, 0o700));
    assert_eq!(owner("existing/new/sub"), (1001, 1002, 0o700));
    assert_eq!(
        owner("existing/new"),
        (1001, 1002, 0o755),
        "created on the way"
    );
    assert_eq!(
        owner("existing"),
        (0, 0, 0o755),
        "existing directories stay as they are"
    );
    assert_eq!(owner("existing/new/link").0, 1001);
    run(&r, &s(&["a.txt"]), "/g", |q| q.chown = Some("7:staff")).unwrap();
    assert_eq!(owner("g"), (7, 50, 0o644));
    let err = run(&r, &s(&["a.txt"]), "/g", |q| q.chown = Some("ghost")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to convert uid/gid chown string to host mapping: unable to find user ghost: no matching entries in passwd file"
    );
    let err = run(&r, &s(&["a.txt"]), "/g", |q| q.chmod = Some("9x")).unwrap_err();
    assert!(matches!(err, CopyError::Chmod(_)));
}

#[test]
fn chown_never_reads_the_hosts_etc() {
    let r = roots();
    symlink("/etc", r.dst.join("etc")).unwrap();
    let err = run(&r, &s(&["a.txt"]), "/x", |q| q.chown = Some("root")).unwrap_err();
    assert!(matches!(err, CopyError::Chown(_)), "{err}");
}

#[test]
fn symlinks_in_the_destination_never_lead_outside() {
    let r = roots();
    let outside = r.outside.to_str().unwrap().to_string();
    let inside = r.dst.join(outside.trim_start_matches('/'));
    for (i, link) in ["/", "../../../../..", outside.as_str()].iter().enumerate() {
        let name = format!("app{i}");
        symlink(link, r.dst.join(&name)).unwrap();
        if i == 2 {
            // Dangling inside the root: refused, and nothing is written on the host.
            assert!(run(&r, &s(&["dir"]), &format!("/{name}/deep/"), plain).is_err());
            assert_eq!(fs::read_dir(&r.outside).unwrap().count(), 0);
            fs::create_dir_all(&inside).unwrap();
        }
        run(&r, &s(&["dir"]), &format!("/{name}/deep/"), plain).unwrap();
        run(&r, &s(&["a.txt"]), &format!("/{name}/"), plain).unwrap();
    }
    assert_eq!(
        fs::read_dir(&r.outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    // `/` and `../..` are the root itself.
    assert!(r.dst.join("deep/one").is_file());
    assert!(r.dst.join("a.txt").is_file());
    // The host path is taken inside the root.
    assert!(inside.join("deep/one").is_file());

    // A destination file that is a symlink to outside is replaced, not written through.
    fs::write(r.outside.join("victim"), "safe").unwrap();
    symlink(r.outside.join("victim"), r.dst.join("target")).unwrap();
    run(&r, &s(&["a.txt"]), "/target", plain).unwrap();
    assert_eq!(fs::read(r.outside.join("victim")).unwrap(), b"safe");
    assert!(fs::symlink_metadata(r.dst.join("target"))
        .unwrap()
        .is_file());
}

#[test]
fn usr_merged_directories_are_followed() {
    let r = roots();
    fs::create_dir_all(r.dst.join("usr/bin")).unwrap();
    symlink("usr/bin", r.dst.join("bin")).unwrap();
    fs::create_dir_all(r.src.join("rootfs/bin")).unwrap();
    fs::write(r.src.join("rootfs/bin/tool"), "t").unwrap();
    run(&r, &s(&["rootfs"]), "/", plain).unwrap();
    assert!(fs::symlink_metadata(r.dst.join("bin"))
        .unwrap()
        .is_symlink());
    assert!(r.dst.join("usr/bin/tool").is_file());
}

#[test]
fn hardlinks_stay_hardlinks() {
    let r = roots();
    fs::hard_link(r.src.join("dir/one"), r.src.join("dir/sub/one-again")).unwrap();
    let stats = run(&r, &s(&["dir"]), "/h", plain).unwrap();
    assert_eq!(stats.hardlinks, 1);
    let a = fs::metadata(r.dst.join("h/one")).unwrap();
    let b = fs::metadata(r.dst.join("h/sub/one-again")).unwrap();
    assert_eq!(a.ino(), b.ino());
}

#[test]
fn add_extracts_local_archives_and_copy_does_not() {
    let r = roots();
    let tar = TarMaker::new()
        .dir("pkg/")
        .file("pkg/file", b"inside")
        .symlink("pkg/root", "/")
        .file("pkg/root/escaped", b"x")
        .finish();
    fs::write(r.src.join("pkg.tar.xz"), compress(&tar, Compression::Xz)).unwrap();
    let extract = |q: &mut CopyRequest<'_>| {
        q.instruction = "ADD";
        q.extract_archives = true;
    };
    let stats = run(&r, &s(&["pkg.tar.xz"]), "/opt", extract).unwrap();
    assert_eq!(stats.archives, 1);
    assert_eq!(fs::read(r.dst.join("opt/pkg/file")).unwrap(), b"inside");
    let file = fs::metadata(r.dst.join("opt/pkg/file")).unwrap();
    assert_eq!(file.uid(), 1234, "the tar's owner without --chown");
    // `pkg/root -> /` is the destination directory, as in dockerd's chrooted untar.
    assert!(r.dst.join("opt/escaped").is_file());
    assert!(!r.dst.join("escaped").exists());
    run(&r, &s(&["pkg.tar.xz"]), "/copied/", plain).unwrap();
    assert!(r.dst.join("copied/pkg.tar.xz").is_file());

    let evil = TarMaker::new().file("../../evil", b"x").finish();
    fs::write(r.src.join("evil.tar"), evil).unwrap();
    let err = run(&r, &s(&["evil.tar"]), "/opt", extract).unwrap_err();
    assert!(
        matches!(
            err,
            CopyError::Extract {
                source: UnpackError::Escape { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(!r.dst.join("evil").exists());
}

#[test]
fn downloaded_files() {
    let r = roots();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    add_downloaded(
        &b"body"[..],
        "index.html",
        &r.dst,
        "/www/",
        None,
        None,
        Some(when),
    )
    .unwrap();
    let m = fs::metadata(r.dst.join("www/index.html")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    assert_eq!(m.mtime(), 1_234_567_890);
    add_downloaded(
        &b"body"[..],
        "x.tgz",
        &r.dst,
        "/named",
        None,
        Some("644"),
        None,
    )
    .unwrap();
    let m = fs::metadata(r.dst.join("named")).unwrap();
    assert_eq!((m.permissions().mode() & 0o7777, m.mtime()), (0o644, 0));
    let err = add_downloaded(&b""[..], "", &r.dst, "/www/", None, None, None).unwrap_err();
    assert!(matches!(err, CopyError::NoFileName(_)));
}

#[test]
fn add_copies_a_file_that_is_no_archive_whole() {
    // The archive check read the file's start, and the copy then began where it stopped: an
    // empty file.
    let r = roots();
    fs::write(r.src.join("fake.tar"), "not an archive at all\n").unwrap();
    let add = |q: &mut CopyRequest<'_>| {
        q.instruction = "ADD";
        q.extract_archives = true;
    };
    run(&r, &s(&["a.txt", "fake.tar"]), "/added/", add).unwrap();
    assert_eq!(fs::read(r.dst.join("added/a.txt")).unwrap(), b"a");
    assert_eq!(
        fs::read(r.dst.join("added/fake.tar")).unwrap(),
        b"not an archive at all\n"
    );
}

#[test]
fn add_of_an_archive_ignores_chown_as_the_classic_builder() {
    let r = roots();
    let tar = TarMaker::new()
        .dir("pkg/")
        .file("pkg/file", b"inside")
        .finish();
    fs::write(r.src.join("pkg.tar"), tar).unwrap();
    let add = |q: &mut CopyRequest<'_>| {
        q.instruction = "ADD";
        q.extract_archives = true;
        q.chown = Some("42:43");
    };
    run(&r, &s(&["pkg.tar"]), "/opt/", add).unwrap();
    let m = fs::metadata(r.dst.join("opt/pkg/file")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678), "the tar's owner");
    let m = fs::metadata(r.dst.join("opt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
}

#[test]
fn copy_from_keeps_the_sources_owner_without_chown() {
    let r = roots();
    let keep = |q: &mut CopyRequest<'_>| q.preserve_owner = true;
    run(&r, &s(&["a.txt", "dir"]), "/kept/", keep).unwrap();
    let owner = |p: &str| {
        let m = fs::symlink_metadata(r.dst.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("kept/a.txt"), (1000, 1000));
    assert_eq!(owner("kept/one"), (1000, 1000));
    assert_eq!(owner("kept/sub"), (1000, 1000));
    assert_eq!(owner("kept/sub/two"), (0, 0));
    assert_eq!(owner("kept"), (0, 0), "made for the copy");
    // --chown wins.
    let chown = |q: &mut CopyRequest<'_>| {
        q.preserve_owner = true;
        q.chown = Some("5:6");
    };
    run(&r, &s(&["a.txt"]), "/owned/", chown).unwrap();
    assert_eq!(owner("owned/a.txt"), (5, 6));
}

#[test]
fn a_received_context_copies_as_its_directory() {
    let r = roots();
    fs::set_permissions(&r.src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(r.src.join("Dockerfile"), "FROM a\n").unwrap();
    fs::hard_link(r.src.join("b.txt"), r.src.join("dir/b-again")).unwrap();
    let tar = TarMaker::new().file("inner/x", b"from the tar").finish();
    fs::write(r.src.join("app.tar.gz"), compress(&tar, Compression::Gzip)).unwrap();
    let (_tmp, ctx) = crate::checksum::tests::received(&r.src);
    let files = ctx.files();
    let cases: &[(&[&str], &str, bool)] = &[
        (&["."], "/all/", false),
        (&["dir"], "/d", false),
        (&["*.txt", "dir/link"], "/t/", false),
        (&["dir/one"], "/f", false),
        (&["app.tar.gz"], "/add/", true),
        (&["app.tar.gz"], "/copied/", false),
    ];
    for (sources, dest, add) in cases {
        let sources = s(sources);
        let mut req = CopyRequest::new(if *add { "ADD" } else { "COPY" });
        req.sources = &sources;
        req.dest = dest;
        req.extract_archives = *add;
        let on_disk = r.dst.join("on-disk");
        let as_received = r.dst.join("received");
        for d in [&on_disk, &as_received] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir(d).unwrap();
        }
        let a = copy(SourceRoot::Dir(&r.src), &on_disk, &req).unwrap();
        let b = copy(files.source(), &as_received, &req).unwrap();
        assert_eq!(a, b, "{sources:?}");
        let sum = |d: &Path| {
            crate::checksum::checksum(SourceRoot::Dir(d), &s(&["."]), &[], None)
                .unwrap()
                .digest
        };
        assert_eq!(sum(&on_disk), sum(&as_received), "{sources:?} -> {dest}");
        match *dest {
            "/all/" => assert_eq!(
                fs::metadata(as_received.join("all/b.txt")).unwrap().ino(),
                fs::metadata(as_received.join("all/dir/b-again"))
                    .unwrap()
                    .ino(),
                "hardlinks stay hardlinks"
            ),
            "/add/" => assert_eq!(
                fs::read(as_received.join("add/inner/x")).unwrap(),
                b"from the tar"
            ),
            _ => {}
        }
    }
}
