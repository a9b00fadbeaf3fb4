//! Keeping the resident set small: one monitor stays per running container.
//!
//! Creating the container runs a large part of the runtime library (spec parsing, seccomp, the
//! clone); the loop afterwards uses little code. After the create, freed heap memory goes back to
//! the kernel, and the pages of code and read-only data (private file mappings that hold no copied page) are dropped
//! from this process's page tables: they are never written, so nothing is lost, and what the loop
//! needs is faulted back in from the page cache (shared with every other monitor).

/// Trims the heap and drops the code pages (see the module documentation).
pub fn release() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    // Each mapping: a header line (range perms offset dev inode path), then "Key: value" lines.
    let mut current: Option<(usize, usize, bool)> = None;
    let flush = |m: Option<(usize, usize, bool)>| {
        if let Some((start, end, true)) = m {
            // SAFETY: [start, end) is a whole private, read-only, file-backed mapping, as the
            // kernel lists it, without a single anonymous (copy-on-write) page: every page is
            // the file's, so MADV_DONTNEED only unmaps them and the next access reads them
            // again from the page cache. Relocated read-only data (RELRO) has anonymous pages
            // and is left alone.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
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
        let candidate = matches!(perms, "r-xp" | "r--p") && path.starts_with('/');
        current = Some((start, end, candidate));
    }
    flush(current.take());
}
