use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime};

use super::*;

/// Docker's default profile as berthd resolves it on x86-64 (three architectures).
const DOCKER_DEFAULT: &str = include_str!("../../tests/fixtures/docker-default-x86_64.json");

fn config(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("valid LinuxSeccomp")
}

fn docker_default() -> LinuxSeccomp {
    serde_json::from_str(DOCKER_DEFAULT).expect("valid LinuxSeccomp")
}

fn small(errno: u32) -> LinuxSeccomp {
    config(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]
    }))
}

fn insns(p: &Program) -> Vec<(u16, u8, u8, u32)> {
    p.instructions
        .iter()
        .map(|i| (i.code, i.jt, i.jf, i.k))
        .collect()
}

fn same(a: &Program, b: &Program) {
    assert_eq!(insns(a), insns(b));
    assert_eq!(a.flags(), b.flags());
    assert_eq!(a.uses_notify(), b.uses_notify());
}

fn cache() -> (tempfile::TempDir, Cache) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = Cache::new(tmp.path().join("state").join("seccomp-cache"));
    (tmp, cache)
}

/// The names of the files in the cache directory, sorted.
fn files(cache: &Cache) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache.dir())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    names
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let file = File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .expect("set_modified");
}

#[test]
fn miss_then_hit_gives_the_compiled_program() {
    let (_tmp, cache) = cache();
    let seccomp = docker_default();
    let fresh = crate::compile(&seccomp).unwrap();

    let (first, outcome) = cache.compile(&seccomp).unwrap();
    assert!(matches!(outcome, Outcome::Stored), "{outcome:?}");
    same(&first, &fresh);
    let entry = cache.entry_path(&seccomp).unwrap();
    assert_eq!(
        files(&cache),
        [entry.file_name().unwrap().to_str().unwrap()]
    );
    let len = fs::metadata(&entry).unwrap().len();
    assert_eq!(len as usize, HEADER_LEN + fresh.len() * INSN_SIZE);

    let (second, outcome) = cache.compile(&seccomp).unwrap();
    assert!(matches!(outcome, Outcome::Hit), "{outcome:?}");
    same(&second, &fresh);
}

#[test]
fn the_directory_is_private() {
    let (_tmp, cache) = cache();
    cache.compile(&small(1)).unwrap();
    let meta = fs::metadata(cache.dir()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    for name in files(&cache) {
        let meta = fs::metadata(cache.dir().join(name)).unwrap();
        assert_eq!(meta.mode() & 0o077, 0);
    }

    // Opened up by someone: closed again before use.
    fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let (_, outcome) = cache.compile(&small(1)).unwrap();
    assert!(matches!(outcome, Outcome::Hit), "{outcome:?}");
    let meta = fs::metadata(cache.dir()).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
}

#[test]
fn a_directory_of_another_user_or_a_symlink_is_not_used() {
    let (tmp, cache) = cache();
    let seccomp = small(1);
    let fresh = crate::compile(&seccomp).unwrap();

    // A symlink to a directory: not followed.
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::create_dir_all(cache.dir().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.dir()).unwrap();
    let (program, outcome) = cache.compile(&seccomp).unwrap();
    assert!(
        matches!(outcome, Outcome::Uncached(CacheError::NotPrivate { .. })),
        "{outcome:?}"
    );
    same(&program, &fresh);
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
    fs::remove_file(cache.dir()).unwrap();

    // Another user's directory (only root can make one).
    if rustix::process::geteuid().is_root() {
        fs::create_dir(cache.dir()).unwrap();
        std::os::unix::fs::chown(cache.dir(), Some(65534), Some(65534)).unwrap();
        let (program, outcome) = cache.compile(&seccomp).unwrap();
        assert!(
            matches!(outcome, Outcome::Uncached(CacheError::NotPrivate { .. })),
            "{outcome:?}"
        );
        same(&program, &fresh);
        assert!(files(&cache).is_empty());
    }
}

#[test]
fn different_configurations_get_different_entries() {
    let (_tmp, cache) = cache();
    let (a, b) = (small(1), small(13));
    assert_ne!(cache.entry_path(&a).unwrap(), cache.entry_path(&b).unwrap());
    assert_eq!(cache.entry_path(&a).unwrap(), cache.entry_path(&a).unwrap());

    let (pa, _) = cache.compile(&a).unwrap();
    let (pb, outcome) = cache.compile(&b).unwrap();
    assert!(matches!(outcome, Outcome::Stored), "{outcome:?}");
    assert_ne!(insns(&pa), insns(&pb));
    assert_eq!(files(&cache).len(), 2);
    let (pb2, outcome) = cache.compile(&b).unwrap();
    assert!(matches!(outcome, Outcome::Hit), "{outcome:?}");
    same(&pb, &pb2);

    // An entry copied under another key's name is refused (the key is in the header).
    fs::copy(cache.entry_path(&a).unwrap(), cache.entry_path(&b).unwrap()).unwrap();
    let (pb3, outcome) = cache.compile(&b).unwrap();
    assert!(
        matches!(&outcome, Outcome::Replaced(CacheError::Invalid { reason, .. }) if reason.contains("another key")),
        "{outcome:?}"
    );
    same(&pb3, &pb);
}

#[test]
fn corrupt_entries_are_compiled_again_and_rewritten() {
    let (_tmp, cache) = cache();
    let seccomp = docker_default();
    let (good, _) = cache.compile(&seccomp).unwrap();
    let entry = cache.entry_path(&seccomp).unwrap();
    let valid = fs::read(&entry).unwrap();

    let max = usize::try_from(libc::BPF_MAXINSNS).unwrap();
    let mut corruptions: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("short header", valid[..HEADER_LEN - 1].to_vec()),
        ("header only", valid[..HEADER_LEN].to_vec()),
        ("torn instruction", valid[..valid.len() - 3].to_vec()),
        (
            "missing instruction",
            valid[..valid.len() - INSN_SIZE].to_vec(),
        ),
        (
            "extra instruction",
            [&valid[..], &valid[HEADER_LEN..HEADER_LEN + 8]].concat(),
        ),
    ];
    let mut flipped = valid.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    corruptions.push(("flipped bit", flipped));
    let mut magic = valid.clone();
    magic[0] = b'X';
    corruptions.push(("magic", magic));
    let mut format = valid.clone();
    format[8..12].copy_from_slice(&(FORMAT + 1).to_ne_bytes());
    corruptions.push(("format", format));
    let mut zero = valid.clone();
    zero[12..16].copy_from_slice(&0u32.to_ne_bytes());
    corruptions.push(("zero count", zero));
    let mut huge = valid[..HEADER_LEN].to_vec();
    huge[12..16].copy_from_slice(&u32::try_from(max + 1).unwrap().to_ne_bytes());
    huge.resize(HEADER_LEN + (max + 1) * INSN_SIZE, 0);
    corruptions.push(("over BPF_MAXINSNS", huge));
    corruptions.push(("garbage", vec![0xff; 1 << 20]));

    for (what, bytes) in corruptions {
        fs::write(&entry, &bytes).unwrap();
        let (program, outcome) = cache.compile(&seccomp).unwrap();
        assert!(
            matches!(outcome, Outcome::Replaced(_)),
            "{what}: {outcome:?}"
        );
        same(&program, &good);
        assert_eq!(fs::read(&entry).unwrap(), valid, "{what}: rewritten");
        let (_, outcome) = cache.compile(&seccomp).unwrap();
        assert!(matches!(outcome, Outcome::Hit), "{what}: {outcome:?}");
    }

    // Something that is not a file where the entry should be: compiled, not cached.
    fs::remove_file(&entry).unwrap();
    fs::create_dir(&entry).unwrap();
    let (program, outcome) = cache.compile(&seccomp).unwrap();
    same(&program, &good);
    assert!(!matches!(outcome, Outcome::Hit), "{outcome:?}");
}

#[test]
fn notify_programs_keep_their_listener_flags_from_the_cache() {
    let (_tmp, cache) = cache();
    let seccomp = config(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    let fresh = crate::compile(&seccomp).unwrap();
    assert!(fresh.uses_notify());
    cache.compile(&seccomp).unwrap();
    let (hit, outcome) = cache.compile(&seccomp).unwrap();
    assert!(matches!(outcome, Outcome::Hit), "{outcome:?}");
    assert!(hit.uses_notify());
    same(&hit, &fresh);
    assert_eq!(
        hit.flags(),
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
}

#[test]
fn invalid_configurations_fail_as_without_the_cache_and_store_nothing() {
    let (_tmp, cache) = cache();
    for json in [
        serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }),
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]
        }),
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        }),
    ] {
        let seccomp = config(json);
        let expected = crate::compile(&seccomp).unwrap_err().to_string();
        let got = cache.compile(&seccomp).unwrap_err().to_string();
        assert_eq!(got, expected);
    }
    let entries = fs::read_dir(cache.dir()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(entries, 0);
}

#[test]
fn the_cache_keeps_the_most_recently_used_entries() {
    let (_tmp, cache) = cache();
    let cache = cache.with_max_entries(2);
    let (a, b, c) = (small(1), small(2), small(3));
    cache.compile(&a).unwrap();
    set_mtime(&cache.entry_path(&a).unwrap(), 30);
    cache.compile(&b).unwrap();
    set_mtime(&cache.entry_path(&b).unwrap(), 20);
    // A hit makes `a` the most recently used: `b` goes when `c` comes.
    let (_, outcome) = cache.compile(&a).unwrap();
    assert!(matches!(outcome, Outcome::Hit), "{outcome:?}");
    cache.compile(&c).unwrap();
    assert!(cache.entry_path(&a).unwrap().exists());
    assert!(!cache.entry_path(&b).unwrap().exists());
    assert!(cache.entry_path(&c).unwrap().exists());
    assert_eq!(files(&cache).len(), 2);

    // A writer's stale leftover goes too; a fresh one (being written) stays.
    let stale = cache.dir().join(format!("{TMP_PREFIX}1-1"));
    let fresh = cache.dir().join(format!("{TMP_PREFIX}1-2"));
    fs::write(&stale, b"x").unwrap();
    fs::write(&fresh, b"x").unwrap();
    set_mtime(&stale, 3600);
    cache.compile(&b).unwrap();
    assert!(!stale.exists());
    assert!(fresh.exists());
}

#[test]
fn concurrent_writers_leave_one_valid_entry() {
    let (_tmp, cache) = cache();
    let seccomp = docker_default();
    let fresh = crate::compile(&seccomp).unwrap();
    let programs: Vec<Program> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..5)
                        .map(|_| {
                            // Each round starts from no entry, so that writers race.
                            let _ = fs::remove_file(cache.entry_path(&seccomp).unwrap());
                            cache.compile(&seccomp).unwrap().0
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer thread"))
            .collect()
    });
    assert_eq!(programs.len(), 20);
    for p in &programs {
        same(p, &fresh);
    }
    let (_, outcome) = cache.compile(&seccomp).unwrap();
    assert!(
        matches!(outcome, Outcome::Hit | Outcome::Stored),
        "{outcome:?}"
    );
    let (_, outcome) = cache.compile(&seccomp).unwrap();
    assert!(matches!(outcome, Outcome::Hit), "{outcome:?}");
    // No temporary file left behind.
    let entry = cache.entry_path(&seccomp).unwrap();
    assert_eq!(
        files(&cache),
        [entry.file_name().unwrap().to_str().unwrap()]
    );
}

#[test]
fn the_key_covers_the_libseccomp_and_crate_versions() {
    // Not observable without another libseccomp; at least the key is stable and not the hash
    // of the JSON alone.
    let seccomp = small(1);
    let json = serde_json::to_vec(&seccomp).unwrap();
    let k = key(&seccomp).unwrap();
    assert_eq!(k, key(&seccomp).unwrap());
    assert_ne!(k.as_slice(), Sha256::digest(&json).as_slice());
}
