//! What a follower reads when the file it follows was rotated away: the files rotated after
//! it, when the log rotated more than once since the last look, shared by the json-file and
//! `local` readers.
//!
//! The follower opens the file the path names now (the new one) before it looks for them, so
//! that a file rotated meanwhile is among the rotated ones (else the path could name a newer
//! file still, and the one between would be skipped). The slots `LOG.1`, `LOG.2`... are then
//! looked at until two looks agree (a rotation meanwhile renames files from one slot to the
//! next), passing over one missing slot (the one a rotation is renaming, or one a rotation
//! that failed half way left empty), so that no file is skipped or read twice.

use super::MAX_FILES;

/// Looks made at most before the last one is taken as it is.
const LOOKS: usize = 20;

/// The files rotated after the old one and before the new one, newest first. `slot(k)`
/// opens `LOG.k` (`None` if there is none); `id` tells a file (its device and inode, or what
/// tells its content where a file is compressed into another) to compare two looks; `is_old` / `is_new` say whether a slot holds the old or the new file.
/// Empty if the old file is not found in a few looks (rotated out of the kept files: nothing
/// tells what followed it).
pub(super) fn rotated_after<T, K: Eq + std::hash::Hash>(
    slot: impl Fn(u32) -> Option<T>,
    id: impl Fn(&T) -> Option<K>,
    is_old: impl Fn(&T) -> bool,
    is_new: impl Fn(&T) -> bool,
) -> Vec<T> {
    let ids = |files: &Option<Vec<T>>| -> Option<Vec<K>> {
        files
            .as_ref()
            .map(|files| files.iter().filter_map(&id).collect())
    };
    let look = || look(&slot, &id, &is_old, &is_new);
    let mut files = look();
    for _ in 0..LOOKS {
        let again = look();
        if again.is_some() && ids(&again) == ids(&files) {
            return again.unwrap_or_default();
        }
        if again.is_none() && files.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        files = again;
    }
    files.unwrap_or_default()
}

/// One look at the slots `LOG.1`...: the files between the new one (if it was rotated too)
/// and the old one; `None` if the old one is not there. One missing slot is passed over. A file seen twice is kept
/// once: a rotation renames the slots from the last one down while the look goes up, so a
/// look that crosses it finds the file just renamed a second time, one slot further.
fn look<T, K: Eq + std::hash::Hash>(
    slot: impl Fn(u32) -> Option<T>,
    id: impl Fn(&T) -> Option<K>,
    is_old: impl Fn(&T) -> bool,
    is_new: impl Fn(&T) -> bool,
) -> Option<Vec<T>> {
    let mut newer = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut missing = 0;
    for k in 1..=MAX_FILES {
        let Some(file) = slot(k) else {
            missing += 1;
            if missing == 2 {
                break;
            }
            continue;
        };
        missing = 0;
        if is_old(&file) {
            return Some(newer);
        }
        if is_new(&file) {
            // Rotated since it was opened: the files before it came after it, and are read
            // when the follower gets to them.
            newer.clear();
        } else if id(&file).is_none_or(|i| seen.insert(i)) {
            newer.push(file);
        }
    }
    None
}
