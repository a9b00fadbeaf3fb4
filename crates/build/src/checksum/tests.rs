use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;

fn sum(root: &Path, sources: &[&str]) -> Checksum {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    checksum(root, &sources, &[], None).unwrap()
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
    let excluded = checksum(r, &["src".to_string()], &["sub".to_string()], None).unwrap();
    assert_eq!(excluded.files, 1);
    fs::write(r.join("src/sub/b.rs"), "changed").unwrap();
    let again = checksum(r, &["src".to_string()], &["sub".to_string()], None).unwrap();
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
    let err = checksum(r, &["host".to_string()], &[], None).unwrap_err();
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
    let first = checksum(r, &[".".to_string()], &[], Some(&mut memo)).unwrap();
    assert_eq!(first.files, 10_000);
    assert_eq!(first.memo_hits, 0);
    assert_eq!(memo.len(), 10_000);
    let mut memo = HashMemo::from_json(&memo.to_json()).unwrap();
    fs::write(r.join("d7/f7"), "new content").unwrap();
    let second = checksum(r, &[".".to_string()], &[], Some(&mut memo)).unwrap();
    assert_eq!(second.memo_hits, 9_999);
    assert_eq!(second.bytes_hashed, "new content".len() as u64);
    assert_ne!(second.digest, first.digest);
    let plain = checksum(r, &[".".to_string()], &[], None).unwrap();
    assert_eq!(
        plain.digest, second.digest,
        "the memo never changes the answer"
    );
}
