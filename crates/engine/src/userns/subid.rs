//! The remap user and its subordinate ranges: `/etc/passwd`, `/etc/group`, `/etc/subuid`,
//! `/etc/subgid`, read as dockerd's `idtools` reads them, and `useradd`/`usermod` for
//! `default`'s `dockremap` when it is missing.

use std::process::Command;

use super::{UsernsError, DEFAULT_USER};

/// One subordinate range: `size` host ids from `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub host: u32,
    pub size: u32,
}

/// A user or group: its name and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub name: String,
    pub id: u32,
}

/// Where dockerd starts looking for a free range for `dockremap`, and its size.
const FIRST_FREE: u32 = 100_000;
const DEFAULT_SIZE: u32 = 65_536;

/// The user and group of `--userns-remap SPEC` (dockerd's `parseRemappedRoot`): a uid or user
/// name, optionally `:` a gid or group name (by default the group of the user's name, or the
/// gid equal to the uid). `default` is `dockremap`, made when missing.
pub(super) fn resolve(spec: &str) -> Result<(Entry, Entry), UsernsError> {
    let mut parts = spec.split(':');
    let (user_part, group_part) = match (parts.next(), parts.next(), parts.next()) {
        (Some(u), g, None) if !u.is_empty() && g != Some("") => (u, g),
        _ => return Err(UsernsError::Spec(spec.to_string())),
    };
    let user = if user_part == "default" {
        ensure_default_user()?
    } else {
        match user_part.parse::<u32>() {
            Ok(uid) => lookup("/etc/passwd", |e| e.id == uid)?.ok_or(UsernsError::NoUid(uid))?,
            Err(_) => lookup("/etc/passwd", |e| e.name == user_part)?
                .ok_or_else(|| UsernsError::NoUser(user_part.to_string()))?,
        }
    };
    let group = match group_part {
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => lookup("/etc/group", |e| e.id == gid)?.ok_or(UsernsError::NoGid(gid))?,
            Err(_) => lookup("/etc/group", |e| e.name == g)?
                .ok_or_else(|| UsernsError::NoGroup(g.to_string()))?,
        },
        None if user_part.parse::<u32>().is_ok() => {
            lookup("/etc/group", |e| e.id == user.id)?.ok_or(UsernsError::NoGid(user.id))?
        }
        None => lookup("/etc/group", |e| e.name == user.name)?
            .ok_or_else(|| UsernsError::NoGroup(user.name.clone()))?,
    };
    Ok((user, group))
}

fn read(path: &str) -> Result<String, UsernsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(UsernsError::Read {
            path: path.to_string(),
            source,
        }),
    }
}

/// The first entry of a passwd or group file that `wanted` takes.
fn lookup(path: &str, wanted: impl Fn(&Entry) -> bool) -> Result<Option<Entry>, UsernsError> {
    Ok(parse_entries(&read(path)?).into_iter().find(|e| wanted(e)))
}

/// `name:x:id:...` lines.
fn parse_entries(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let id = f.nth(1)?.trim().parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| Entry {
                name: name.to_string(),
                id,
            })
        })
        .collect()
}

/// The ranges of `user` (lines naming it or its uid) in a subuid or subgid file, in order.
pub(super) fn ranges(path: &str, user: &Entry) -> Result<Vec<IdRange>, UsernsError> {
    Ok(parse_ranges(&read(path)?)
        .into_iter()
        .filter(|(owner, _)| *owner == user.name || owner.parse() == Ok(user.id))
        .map(|(_, r)| r)
        .collect())
}

/// `owner:start:count` lines (others are skipped).
fn parse_ranges(text: &str) -> Vec<(String, IdRange)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let owner = f.next()?;
            let host = f.next()?.parse().ok()?;
            let size: u32 = f.next()?.parse().ok()?;
            (!owner.is_empty() && !owner.starts_with('#') && size > 0)
                .then(|| (owner.to_string(), IdRange { host, size }))
        })
        .collect()
}

/// `dockremap`, made (`useradd -r -s /bin/false`) when missing, with a range in `/etc/subuid`
/// and `/etc/subgid` (`usermod -v/-w`) when it has none: the first free one from 100000 on.
fn ensure_default_user() -> Result<Entry, UsernsError> {
    if lookup("/etc/passwd", |e| e.name == DEFAULT_USER)?.is_none() {
        run(Command::new("useradd").args(["-r", "-s", "/bin/false", DEFAULT_USER]))?;
    }
    let user = lookup("/etc/passwd", |e| e.name == DEFAULT_USER)?
        .ok_or_else(|| UsernsError::NoUser(DEFAULT_USER.to_string()))?;
    for (path, flag) in [("/etc/subuid", "-v"), ("/etc/subgid", "-w")] {
        if !ranges(path, &user)?.is_empty() {
            continue;
        }
        let taken = parse_ranges(&read(path)?);
        let start = free_start(taken.iter().map(|(_, r)| *r));
        let end = start.saturating_add(DEFAULT_SIZE - 1);
        run(Command::new("usermod").args([flag, &format!("{start}-{end}"), DEFAULT_USER]))?;
    }
    Ok(user)
}

/// The lowest start from [`FIRST_FREE`] on where [`DEFAULT_SIZE`] ids overlap no range of
/// `taken`.
fn free_start(taken: impl Iterator<Item = IdRange> + Clone) -> u32 {
    let mut start = FIRST_FREE;
    loop {
        let end = u64::from(start) + u64::from(DEFAULT_SIZE);
        let clash = taken.clone().find(|r| {
            let (s, e) = (u64::from(r.host), u64::from(r.host) + u64::from(r.size));
            s < end && u64::from(start) < e
        });
        match clash {
            Some(r) => start = r.host.saturating_add(r.size),
            None => return start,
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), UsernsError> {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| UsernsError::Create(format!("{what}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(UsernsError::Create(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_uid() {
        let text = "a:100000:65536\n# x\nb:200000:10\n1001:300000:5\nbad\na:1:0\n";
        let all = parse_ranges(text);
        assert_eq!(all.len(), 3);
        let owner = Entry {
            name: "b".into(),
            id: 1001,
        };
        let mine: Vec<_> = all
            .into_iter()
            .filter(|(o, _)| *o == owner.name || o.parse() == Ok(owner.id))
            .map(|(_, r)| r)
            .collect();
        assert_eq!(
            mine,
            [
                IdRange {
                    host: 200000,
                    size: 10
                },
                IdRange {
                    host: 300000,
                    size: 5
                }
            ]
        );
    }

    #[test]
    fn free_range_skips_taken_ones() {
        let r = |host, size| IdRange { host, size };
        assert_eq!(free_start([].into_iter()), 100_000);
        assert_eq!(free_start([r(100_000, 65_536)].into_iter()), 165_536);
        assert_eq!(
            free_start([r(150_000, 10), r(165_536, 1)].into_iter()),
            165_537
        );
        assert_eq!(free_start([r(0, 10)].into_iter()), 100_000);
    }

    #[test]
    fn passwd_entries() {
        let e =
            parse_entries("root:x:0:0::/root:/bin/sh\nnope\ndockremap:x:999:999::/:/bin/false\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].id, 999);
    }
}
