//! Keeping the resident set of long-lived, mostly idle processes small: one `berth-monitor`
//! stays per running container, and `berthd` waits for requests most of the time.
//!
//! Every burst of work (creating a container runs a large part of the runtime library; a
//! request, an exec, an attach) faults in code and grows the heap. Once the process has been
//! idle for a while (its caller decides: [`Trimmer::touch`], [`Trimmer::due_in`]),
//! [`Trimmer::trim`] hands back what an idle process does not need:
//! - freed heap memory (`malloc_trim`);
//! - the pages of code and read-only data: private file mappings that hold no copied page are
//!   never written, so dropping them from the page tables loses nothing, and what the loop needs
//!   next is faulted back in from the page cache (shared with every other monitor);
//! - the main thread's stack below the current frame, which holds no live data (only when
//!   called on the main thread of a process that takes its signals through a signalfd).
//!
//! Binaries using this are best linked position-dependent (their `build.rs`), so that their
//! read-only data needs no relocation at load time and stays a clean, droppable file mapping.

use std::time::{Duration, Instant};

/// How long a process waits without activity before it trims, unless it says otherwise.
pub const IDLE_TRIM: Duration = Duration::from_secs(1);
/// Stack kept below the current frame when trimming: the calls `trim` makes run in it.
const STACK_MARGIN: usize = 16 << 10;

/// When to trim, and what.
#[derive(Debug)]
pub struct Trimmer {
    /// Idle time before a trim.
    idle: Duration,
    /// Whether the `[stack]` mapping may be trimmed (see the module documentation).
    trim_stack: bool,
    /// Whole private, read-only, file-backed mappings without anonymous pages (as listed once).
    ranges: Vec<(usize, usize)>,
    /// The `[stack]` mapping.
    stack: Option<(usize, usize)>,
    scanned: bool,
    /// The last activity not yet followed by a trim.
    active: Option<Instant>,
}

impl Default for Trimmer {
    /// A trimmer for a single-threaded process whose signals are blocked: trims after
    /// [`IDLE_TRIM`], stack included.
    fn default() -> Self {
        Trimmer {
            idle: IDLE_TRIM,
            trim_stack: true,
            ranges: Vec::new(),
            stack: None,
            scanned: false,
            active: None,
        }
    }
}

impl Trimmer {
    /// A trimmer for a multi-threaded process (whose other threads may run signal handlers on
    /// the main stack): the stack is left alone; trims after `idle`.
    pub fn threaded(idle: Duration) -> Self {
        Trimmer {
            idle,
            trim_stack: false,
            ..Trimmer::default()
        }
    }

    /// Notes activity: a trim is due the idle time after the last one.
    pub fn touch(&mut self) {
        self.active = Some(Instant::now());
    }

    /// How long until a trim is due, if one is pending.
    pub fn due_in(&self) -> Option<Duration> {
        self.active.map(|t| self.idle.saturating_sub(t.elapsed()))
    }

    /// Trims if the monitor has been idle long enough since the last activity.
    pub fn trim_if_idle(&mut self) {
        if self.due_in().is_some_and(|d| d.is_zero()) {
            self.trim();
        }
    }

    /// Trims now (see the module documentation).
    pub fn trim(&mut self) {
        self.active = None;
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
        if !self.scanned {
            self.scanned = true;
            if let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") {
                (self.ranges, self.stack) = parse_smaps(&smaps);
            }
        }
        for &(start, end) in &self.ranges {
            // SAFETY: [start, end) is a whole private, read-only, file-backed mapping, as the
            // kernel listed it, without a single anonymous (copy-on-write) page: every page is
            // the file's, so MADV_DONTNEED only unmaps them and the next access reads them
            // again from the page cache. Such mappings are never written or remapped.
            unsafe {
                let _ = rustix::mm::madvise(
                    start as *mut std::ffi::c_void,
                    end - start,
                    rustix::mm::Advice::LinuxDontNeed,
                );
            }
        }
        if let Some((start, end)) = self.stack.filter(|_| self.trim_stack) {
            let here = std::ptr::addr_of!(start) as usize;
            let keep_from = here.saturating_sub(STACK_MARGIN) & !(page_size() - 1);
            if (start..end).contains(&here) && keep_from > start {
                // SAFETY: the stack grows down and this thread is the only one: everything
                // below the current frame (less a margin for the calls made from here, which
                // is larger than the madvise call needs) holds no live data, and signals are
                // blocked (taken through a signalfd), so no handler runs there. Dropped pages
                // come back zero-filled when the stack grows again.
                unsafe {
                    let _ = rustix::mm::madvise(
                        start as *mut std::ffi::c_void,
                        keep_from - start,
                        rustix::mm::Advice::LinuxDontNeed,
                    );
                }
            }
        }
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

type Range = (usize, usize);

/// The droppable file mappings and the stack, from `/proc/self/smaps`.
fn parse_smaps(smaps: &str) -> (Vec<Range>, Option<Range>) {
    let mut ranges = Vec::new();
    let mut stack = None;
    // Each mapping: a header line (range perms offset dev inode path), then "Key: value" lines.
    let mut current: Option<(usize, usize, bool)> = None;
    let mut flush = |m: Option<(usize, usize, bool)>| {
        if let Some((start, end, true)) = m {
            ranges.push((start, end));
        }
    };
    for line in smaps.lines() {
        if let Some(anon) = line.strip_prefix("Anonymous:") {
            if let Some(m) = &mut current {
                m.2 &= anon.trim().trim_end_matches("kB").trim() == "0";
            }
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        flush(current.take());
        // A file mapping has a path; [vdso] and the like are the kernel's.
        let path = fields.nth(3).unwrap_or_default();
        if path == "[stack]" {
            stack = Some((start, end));
        }
        let candidate = matches!(perms, "r-xp" | "r--p") && path.starts_with('/');
        current = Some((start, end, candidate));
    }
    flush(current.take());
    (ranges, stack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_and_the_stack() {
        let smaps = "\
00400000-00500000 r-xp 00000000 fe:00 1 /usr/bin/x
Rss: 12 kB
Anonymous: 0 kB
00500000-00600000 r--p 00100000 fe:00 1 /usr/bin/x
Anonymous: 8 kB
00600000-00700000 rw-p 00200000 fe:00 1 /usr/bin/x
Anonymous: 0 kB
7f0000000000-7f0000001000 r-xp 00000000 00:00 0 [vdso]
Anonymous: 0 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
Anonymous: 64 kB
";
        let (ranges, stack) = parse_smaps(smaps);
        assert_eq!(ranges, vec![(0x400000, 0x500000)]);
        assert_eq!(stack, Some((0x7ffc00000000, 0x7ffc00021000)));
    }
}
