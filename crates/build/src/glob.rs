//! Go's `path/filepath.Match` on Unix, used for `COPY`/`ADD` sources.
//!
//! Grammar (exactly Go's):
//!
//! ```text
//! pattern:     { term }
//! term:        '*'         any sequence of non-'/' characters
//!              '?'         any single non-'/' character
//!              '[' [ '^' ] { character-range } ']'
//!                          character class (must be non-empty)
//!              c           matches character c (c != '*', '?', '\\', '[')
//!              '\\' c      matches character c
//! character-range:
//!              c           matches character c (c != '\\', '-', ']')
//!              '\\' c      matches character c
//!              lo '-' hi   matches character c for lo <= c <= hi
//! ```
//!
//! Only `^` negates a class, as in Go: `[!a]` is the class of `!` and `a`.
//! A malformed pattern gives [`GlobError::BadPattern`], also when the
//! malformed part comes after the point where the match already failed.

/// Errors of [`matches`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// Go's `filepath.ErrBadPattern`.
    #[error("syntax error in pattern")]
    BadPattern,
}

const SEPARATOR: char = '/';

/// Reports whether `name` matches the shell pattern `pattern`
/// (`filepath.Match`). The whole name must match; `*` and `?` never match `/`.
pub fn matches(pattern: &str, name: &str) -> Result<bool, GlobError> {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    match_chars(&pattern, &name)
}

/// Checks that `pattern` is well formed, without matching anything.
pub fn validate(pattern: &str) -> Result<(), GlobError> {
    matches(pattern, "").map(|_| ())
}

/// Reports whether `pattern` contains any of Go's meta characters
/// (`*`, `?`, `[`, `\`), i.e. whether it has to be matched rather than looked up.
pub fn has_meta(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

fn match_chars(mut pattern: &[char], mut name: &[char]) -> Result<bool, GlobError> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it has a `/`.
            return Ok(!name.contains(&SEPARATOR));
        }
        // Match at the current position.
        let (t, ok, err) = match_chunk(chunk, name);
        // The last chunk has to exhaust the name, or a star may still help.
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if let Some(e) = err {
            return Err(e);
        }
        if star {
            // Skip i+1 characters, never past a `/`.
            let mut i = 0;
            while i < name.len() && name[i] != SEPARATOR {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'pattern;
                }
                if let Some(e) = err {
                    return Err(e);
                }
                i += 1;
            }
        }
        // Before saying no, check that the rest of the pattern is well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if let (_, _, Some(e)) = match_chunk(chunk, &[]) {
                return Err(e);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the leading stars and the chunk up to the next star outside a class.
fn scan_chunk(mut pattern: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while let Some(('*', rest)) = pattern.split_first().map(|(c, r)| (*c, r)) {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            '\\' if i + 1 < pattern.len() => i += 1,
            '[' => in_range = true,
            ']' => in_range = false,
            '*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches `chunk` (no stars outside classes) against the start of `s`.
/// Returns the rest of `s`, whether it matched, and a syntax error if any.
fn match_chunk<'a>(mut chunk: &[char], mut s: &'a [char]) -> (&'a [char], bool, Option<GlobError>) {
    let mut failed = false;
    while let Some((&c, after)) = chunk.split_first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            '[' => {
                let mut r = '\0';
                if !failed {
                    if let Some((&first, rest)) = s.split_first() {
                        r = first;
                        s = rest;
                    }
                }
                chunk = after;
                let mut negated = false;
                if let Some(('^', rest)) = chunk.split_first().map(|(c, r)| (*c, r)) {
                    negated = true;
                    chunk = rest;
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = match get_esc(chunk) {
                        Ok(v) => v,
                        Err(e) => return (&[], false, Some(e)),
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&'-') {
                        match get_esc(&chunk[1..]) {
                            Ok((h, rest)) => {
                                hi = h;
                                chunk = rest;
                            }
                            Err(e) => return (&[], false, Some(e)),
                        }
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    match s.split_first() {
                        Some((&SEPARATOR, _)) | None => failed = true,
                        Some((_, rest)) => s = rest,
                    }
                }
                chunk = after;
            }
            _ => {
                let literal = if c == '\\' {
                    match after.split_first() {
                        Some((&l, rest)) => {
                            chunk = rest;
                            l
                        }
                        None => return (&[], false, Some(GlobError::BadPattern)),
                    }
                } else {
                    chunk = after;
                    c
                };
                if !failed {
                    match s.split_first() {
                        Some((&first, rest)) if first == literal => s = rest,
                        _ => failed = true,
                    }
                }
            }
        }
    }
    if failed {
        (&[], false, None)
    } else {
        (s, true, None)
    }
}

/// One (possibly escaped) character of a class range.
fn get_esc(chunk: &[char]) -> Result<(char, &[char]), GlobError> {
    let mut chunk = match chunk.first() {
        None | Some('-') | Some(']') => return Err(GlobError::BadPattern),
        Some(_) => chunk,
    };
    if chunk.first() == Some(&'\\') {
        chunk = &chunk[1..];
    }
    let (&r, rest) = chunk.split_first().ok_or(GlobError::BadPattern)?;
    if rest.is_empty() {
        // A class must be closed by a `]` after this character.
        return Err(GlobError::BadPattern);
    }
    Ok((r, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> Result<bool, GlobError> {
        matches(p, n)
    }

    // Go's own table (path/filepath match_test.go), Unix cases.
    #[test]
    fn go_match_table() {
        let bad = Err(GlobError::BadPattern);
        let cases: &[(&str, &str, Result<bool, GlobError>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", bad.clone()),
            ("[-]", "-", bad.clone()),
            ("[x-]", "x", bad.clone()),
            ("[x-]", "-", bad.clone()),
            ("[x-]", "z", bad.clone()),
            ("[-x]", "x", bad.clone()),
            ("[-x]", "-", bad.clone()),
            ("[-x]", "a", bad.clone()),
            ("\\", "a", bad.clone()),
            ("[a-b-c]", "a", bad.clone()),
            ("[", "a", bad.clone()),
            ("[^", "a", bad.clone()),
            ("[^bc", "a", bad.clone()),
            ("a[", "a", bad.clone()),
            ("a[", "ab", bad.clone()),
            ("a[", "x", bad.clone()),
            ("a/b[", "x", bad.clone()),
            ("*x", "xxx", Ok(true)),
        ];
        for (p, n, want) in cases {
            assert_eq!(&m(p, n), want, "pattern {p:?} name {n:?}");
        }
    }

    #[test]
    fn bang_is_not_negation_as_in_go() {
        assert_eq!(m("[!a]", "!"), Ok(true));
        assert_eq!(m("[!a]", "b"), Ok(false));
    }

    #[test]
    fn empty_pattern_matches_only_empty_name() {
        assert_eq!(m("", ""), Ok(true));
        assert_eq!(m("", "a"), Ok(false));
    }

    #[test]
    fn validate_and_meta() {
        assert!(validate("a/*.go").is_ok());
        assert_eq!(validate("a["), Err(GlobError::BadPattern));
        assert!(has_meta("*.go"));
        assert!(has_meta("a\\b"));
        assert!(!has_meta("plain/file.txt"));
    }
}
