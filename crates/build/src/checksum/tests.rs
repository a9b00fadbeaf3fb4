use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use std::path::Path;

use super::*;
use crate::context::{pack_dir, Context};

fn sum(root: &Path, sources: &[&str]) -> Checksum {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    checksum(SourceRoot::Dir(root), &sources, &[], None).unwrap()
}

/// `dir` as `POST /build` receives it from the docker CLI (owners 0:0).
pub(crate) fn received(dir: &Path) -> (tempfile::TempDir, Context) {
    let mut tar = Vec::new();
    pack_dir(dir, &Matcher::default(), &mut tar).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = Context::extract(&tar[..], tmp.path(), "Dockerfile").unwrap();
    (tmp, ctx)
}

#[test]
fn a_received_context_sums_as_its_directory() {
    let t = tree();
    let r = t.path();
    fs::set_permissions(r, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(r.join("Dockerfile"), "FROM a\n").unwrap();
    fs::set_permissions(r.join("src/a.rs"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::hard_link(r.join("src/sub/b.rs"), r.join("src/hard")).unwrap();
    std::os::unix::fs::symlink("/src", r.join("abs")).unwrap();
    std::os::unix::fs::symlink("../../src/sub", r.join("src/sub/up")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r.join("host")).unwrap();
    std::os::unix::fs::symlink("loop2", r.join("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", r.join("loop2")).unwrap();
    fs::create_dir(r.join("empty")).unwrap();
    let (_tmp, ctx) = received(r);
    let files = ctx.files();
    let cases: &[(&[&str], &[&str])] = &[
        (&["."], &[]),
        (&["/"], &[]),
        (&["src"], &[]),
        (&["src/"], &["sub"]),
        (&["src/*.rs", "Cargo.toml"], &[]),
        (&["*"], &["*.toml"]),
        (&["s*/s?b"], &[]),
        (&["abs"], &[]),
        (&["abs/sub/b.rs"], &[]),
        (&["src/sub/up/up/b.rs"], &[]),
        (&["../../src/./sub"], &[]),
        (&["src/[a-h]*"], &[]),
        (&["empty", "src/link"], &[]),
        (&["missing"], &[]),
        (&["host"], &[]),
        (&["loop1"], &[]),
        (&["nomatch*"], &[]),
        (&["src/[a"], &[]),
    ];
    let mut same_sums = 0;
    for (sources, excludes) in cases {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let excludes: Vec<String> = excludes.iter().map(|s| s.to_string()).collect();
        let on_disk = checksum(SourceRoot::Dir(r), &sources, &excludes, None);
        let as_received = checksum(files.source(), &sources, &excludes, None);
        match (on_disk, as_received) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.digest, b.digest, "{sources:?} {excludes:?}");
                assert_eq!(a.files, b.files, "{sources:?}");
                assert_eq!(b.bytes_hashed, 0, "the index knows the digests");
                same_sums += 1;
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{sources:?}"),
            (a, b) => panic!("{sources:?}: on disk {a:?}, received {b:?}"),
        }
    }
    // (`*` meets the symlink loop: an error both ways)
    assert_eq!(same_sums, 12);
}

fn tree() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    fs::create_dir_all(r.join("src/sub")).unwrap();
    fs::write(r.join("src/a.rs"), "a").unwrap();
    fs::write(r.join("src/sub/b.rs"), "b").unwrap();
    std::os::unix::fs::symlink("a.rs", r.join("src/link")).unwrap();
    fs::write(r.join("Cargo.toml"), "[package]").unwrap();
    tmp
}

#[test]
fn stable_and_independent_of_times() {
    let t = tree();
    let before = sum(t.path(), &["src"]);
    assert!(before.digest.starts_with("sha256:"));
    assert_eq!(before.digest.len(), 7 + 64);
    assert_eq!(before.files, 2);
    let file = fs::File::options()
        .write(true)
        .open(t.path().join("src/a.rs"))
        .unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(12345))
        .unwrap();
    assert_eq!(sum(t.path(), &["src"]).digest, before.digest);
}

#[test]
fn every_property_changes_the_sum() {
    let t = tree();
    let r = t.path();
    let base = sum(r, &["src"]).digest;
    let mut seen = vec![base.clone()];
    let mut changed = |what: &str| {
        let now = sum(r, &["src"]).digest;
        assert!(!seen.contains(&now), "{what} did not change the checksum");
        seen.push(now);
    };
    fs::write(r.join("src/a.rs"), "A").unwrap();
    changed("content");
    fs::set_permissions(r.join("src/a.rs"), fs::Permissions::from_mode(0o600)).unwrap();
    changed("mode");
    std::os::unix::fs::lchown(r.join("src/a.rs"), Some(1000), Some(1000)).unwrap();
    changed("owner");
    fs::remove_file(r.join("src/link")).unwrap();
    std::os::unix::fs::symlink("sub/b.rs", r.join("src/link")).unwrap();
    changed("symlink target");
    fs::rename(r.join("src/sub/b.rs"), r.join("src/sub/c.rs")).unwrap();
    changed("name");
    fs::create_dir(r.join("src/empty")).unwrap();
    changed("empty directory");
    let f = fs::File::open(r.join("src/a.rs")).unwrap();
    rustix::fs::fsetxattr(&f, "user.k", b"v", rustix::fs::XattrFlags::empty()).unwrap();
    changed("xattr");
}

#[test]
fn sources_and_excludes() {
    let t = tree();
    let r = t.path();
    let both = sum(r, &["src", "Cargo.toml"]);
    let swapped = sum(r, &["Cargo.toml", "src"]);
    assert_ne!(
        both.digest, swapped.digest,
        "order of sources is part of the copy"
    );
    assert_eq!(both.files, 3);
    let wildcard = sum(r, &["src/*.rs"]);
    assert_eq!(wildcard.files, 1);
    let excluded = checksum(
        SourceRoot::Dir(r),
        &["src".to_string()],
        &["sub".to_string()],
        None,
    )
    .unwrap();
    assert_eq!(excluded.files, 1);
    fs::write(r.join("src/sub/b.rs"), "changed").unwrap();
    let again = checksum(
        SourceRoot::Dir(r),
        &["src".to_string()],
        &["sub".to_string()],
        None,
    )
    .unwrap();
    assert_eq!(
        excluded.digest, again.digest,
        "an excluded file does not count"
    );
}

#[test]
fn a_symlinked_source_is_followed_inside_the_root_only() {
    let t = tree();
    let r = t.path();
    std::os::unix::fs::symlink("/src", r.join("abs")).unwrap();
    // `abs -> /src` is the root's src, so it covers the same files.
    assert_eq!(sum(r, &["abs"]).files, 2);
    std::os::unix::fs::symlink("/etc/passwd", r.join("host")).unwrap();
    let err = checksum(SourceRoot::Dir(r), &["host".to_string()], &[], None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file not found in build context or excluded by .dockerignore: stat host: file does not exist"
    );
}

#[test]
fn memo_rehashes_only_changed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    for d in 0..100 {
        fs::create_dir(r.join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            fs::write(r.join(format!("d{d}/f{f}")), format!("{d}-{f}")).unwrap();
        }
    }
    let mut memo = HashMemo::new();
    let first = checksum(SourceRoot::Dir(r), &[".".to_string()], &[], Some(&mut memo)).unwrap();
    assert_eq!(first.files, 10_000);
    assert_eq!(first.memo_hits, 0);
    assert_eq!(memo.len(), 10_000);
    let mut memo = HashMemo::from_json(&memo.to_json()).unwrap();
    fs::write(r.join("d7/f7"), "new content").unwrap();
    let second = checksum(SourceRoot::Dir(r), &[".".to_string()], &[], Some(&mut memo)).unwrap();
    assert_eq!(second.memo_hits, 9_999);
    assert_eq!(second.bytes_hashed, "new content".len() as u64);
    assert_ne!(second.digest, first.digest);
    let plain = checksum(SourceRoot::Dir(r), &[".".to_string()], &[], None).unwrap();
    assert_eq!(
        plain.digest, second.digest,
        "the memo never changes the answer"
    );
}
