//! `.dockerignore` with Docker's semantics (moby/patternmatcher and
//! BuildKit's dockerignore reader).
//!
//! * Lines starting with `#` are comments (only in column one); lines are
//!   trimmed; blank lines are skipped; a UTF-8 BOM is dropped.
//! * `!pattern` re-includes; the last pattern that matches wins.
//! * Patterns are cleaned like Go's `filepath.Clean` and a leading `/` is
//!   dropped, so `/a/../b/` is `b`.
//! * `*` and `?` do not cross `/`; `[...]` classes as `filepath.Match`;
//!   `\` escapes; `**/` is any number of directories (also none), a
//!   trailing `**` anything.
//! * A pattern that matches a parent directory matches everything below it.
//!
//! [`Matcher::can_skip_dir`] tells a context walker that no exclusion could
//! bring back anything under an excluded directory, so it need not descend.

use crate::glob::{self, GlobError};

/// Errors of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    #[error("invalid pattern {pattern:?}: {source}")]
    BadPattern { pattern: String, source: GlobError },
}

/// The name of the ignore file at the root of the context.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// The ignore files that apply to a build with the Dockerfile at
/// `dockerfile_path` (relative to where the Dockerfile is looked up), in
/// order of precedence: `<Dockerfile>.dockerignore` next to the Dockerfile,
/// then `.dockerignore` at the root of the context. The first that exists
/// is used.
pub fn ignore_file_candidates(dockerfile_path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let trimmed = dockerfile_path.trim_end_matches('/');
    if !trimmed.is_empty() && trimmed != "-" {
        out.push(format!("{trimmed}.dockerignore"));
    }
    out.push(DOCKERIGNORE.to_string());
    out
}

/// Reads `.dockerignore` text into patterns (BuildKit's `ReadAll`).
pub fn read_dockerignore(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = match pattern.strip_prefix('!') {
            Some(rest) => {
                pattern = rest.trim();
                true
            }
            None => false,
        };
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 {
                if let Some(rest) = cleaned.strip_prefix('/') {
                    cleaned = rest.to_string();
                }
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run of characters but `/`.
    Star,
    /// `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` (or `**` inside): nothing, or anything ending in `/`.
    DirPrefix,
    /// A trailing `**`: anything.
    Rest,
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern without its `!`.
    pub text: String,
    /// A `!` pattern: re-includes what it matches.
    pub exclusion: bool,
    tokens: Vec<Token>,
}

impl Pattern {
    fn compile(raw: &str) -> Result<Option<Pattern>, IgnoreError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let mut p = clean_path(trimmed);
        let exclusion = p.starts_with('!');
        if exclusion {
            p.remove(0);
            if p.is_empty() {
                return Err(IgnoreError::IllegalExclusion);
            }
        }
        glob::validate(&p).map_err(|source| IgnoreError::BadPattern {
            pattern: p.clone(),
            source,
        })?;
        let tokens = tokenize(&p);
        Ok(Some(Pattern {
            text: p,
            exclusion,
            tokens,
        }))
    }

    /// Does the pattern match `path` itself (no parent rule)?
    pub fn matches_exactly(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        self.run(&chars)
            .is_some_and(|s| s.accepts(self.tokens.len()))
    }

    /// Could the pattern match some path that starts with `prefix`?
    fn could_match_below(&self, prefix: &str) -> bool {
        let chars: Vec<char> = prefix.chars().collect();
        self.run(&chars).is_some()
    }

    /// NFA walk; `None` once no state is alive.
    fn run(&self, s: &[char]) -> Option<States> {
        let mut st = States::start(&self.tokens);
        for &c in s {
            st = st.step(&self.tokens, c)?;
        }
        Some(st)
    }
}

/// NFA states, as sorted lists of token indices: `at` = before token i;
/// `inside` = within a `DirPrefix` at i after a non-`/` character (may not
/// leave yet). Only live states are visited, so literal-heavy patterns
/// match in linear time.
#[derive(Clone)]
struct States {
    at: Vec<usize>,
    inside: Vec<usize>,
}

impl States {
    fn start(tokens: &[Token]) -> States {
        let mut s = States {
            at: vec![0],
            inside: Vec::new(),
        };
        s.close(tokens);
        s
    }

    /// Adds the states reachable without consuming (past `*`, `**`).
    fn close(&mut self, tokens: &[Token]) {
        let mut k = 0;
        while let Some(&i) = self.at.get(k) {
            if matches!(
                tokens.get(i),
                Some(Token::Star | Token::DirPrefix | Token::Rest)
            ) {
                self.at.push(i + 1);
            }
            k += 1;
        }
        self.at.sort_unstable();
        self.at.dedup();
    }

    fn accepts(&self, n: usize) -> bool {
        self.at.binary_search(&n).is_ok()
    }

    fn step(&self, tokens: &[Token], c: char) -> Option<States> {
        let mut next = States {
            at: Vec::new(),
            inside: Vec::new(),
        };
        let dir_prefix = |i: usize| {
            if c == '/' {
                (Some(i), None)
            } else {
                (None, Some(i))
            }
        };
        for &i in &self.inside {
            let (a, b) = dir_prefix(i);
            next.at.extend(a);
            next.inside.extend(b);
        }
        for &i in &self.at {
            let Some(t) = tokens.get(i) else { continue };
            let (stay, advance) = match t {
                Token::DirPrefix => {
                    let (a, b) = dir_prefix(i);
                    next.at.extend(a);
                    next.inside.extend(b);
                    continue;
                }
                Token::Literal(l) => (false, *l == c),
                Token::One => (false, c != '/'),
                Token::Star => (c != '/', false),
                Token::Rest => (true, false),
                Token::Class { negated, ranges } => {
                    let hit = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                    (false, hit != *negated)
                }
            };
            if stay {
                next.at.push(i);
            }
            if advance {
                next.at.push(i + 1);
            }
        }
        if next.at.is_empty() && next.inside.is_empty() {
            return None;
        }
        next.inside.sort_unstable();
        next.inside.dedup();
        next.close(tokens);
        Some(next)
    }
}

/// patternmatcher's translation, as tokens (the pattern is valid).
fn tokenize(p: &str) -> Vec<Token> {
    let chars: Vec<char> = p.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i >= chars.len() {
                    Token::Rest
                } else {
                    Token::DirPrefix
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    tokens.push(Token::Literal(n));
                }
                None => tokens.push(Token::Literal('\\')),
            },
            '[' => {
                let mut negated = false;
                if chars.get(i) == Some(&'^') {
                    negated = true;
                    i += 1;
                }
                let mut ranges = Vec::new();
                while let Some(&c) = chars.get(i) {
                    if c == ']' && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let mut lo = c;
                    i += 1;
                    if lo == '\\' {
                        lo = chars.get(i).copied().unwrap_or('\\');
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') {
                        if let Some(&h) = chars.get(i + 1) {
                            i += 2;
                            hi = h;
                            if h == '\\' {
                                hi = chars.get(i).copied().unwrap_or('\\');
                                i += 1;
                            }
                        }
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            other => tokens.push(Token::Literal(other)),
        }
    }
    tokens
}

/// A compiled list of ignore patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Compiles patterns (empty ones are skipped).
    pub fn new<I, S>(patterns: I) -> Result<Matcher, IgnoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for p in patterns {
            if let Some(p) = Pattern::compile(p.as_ref())? {
                out.push(p);
            }
        }
        Ok(Matcher { patterns: out })
    }

    /// Reads and compiles `.dockerignore` text.
    pub fn from_dockerignore(text: &str) -> Result<Matcher, IgnoreError> {
        Matcher::new(read_dockerignore(text))
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any `!` pattern exists.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context, `/`-separated) is ignored:
    /// the last pattern that matches it or one of its parent directories
    /// decides (patternmatcher's `MatchesOrParentMatches`).
    pub fn matches(&self, path: &str) -> bool {
        let path = clean_path(path);
        let parents: Vec<&str> = match path.rsplit_once('/') {
            Some((parent, _)) => parent.split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // Only a pattern that could change the answer is evaluated.
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.matches_exactly(&path);
            if !hit {
                hit = (1..=parents.len()).any(|i| p.matches_exactly(&parents[..i].join("/")));
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walker may skip directory `dir` entirely: it is ignored
    /// and no `!` pattern could re-include it or anything below it.
    pub fn can_skip_dir(&self, dir: &str) -> bool {
        if !self.matches(dir) {
            return false;
        }
        let dir = clean_path(dir);
        let below = format!("{dir}/");
        let ancestors: Vec<String> = {
            let parts: Vec<&str> = dir.split('/').collect();
            (1..=parts.len()).map(|i| parts[..i].join("/")).collect()
        };
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| p.could_match_below(&below) || ancestors.iter().any(|a| p.matches_exactly(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str]) -> Matcher {
        Matcher::new(patterns).unwrap()
    }

    #[test]
    fn reader() {
        let text = "\u{feff}# comment\n  node_modules  \n\n/abs/path/\n!  /keep/../kept\n #not a comment\n*.log\n";
        assert_eq!(
            read_dockerignore(text),
            [
                "node_modules",
                "abs/path",
                "!kept",
                "#not a comment",
                "*.log"
            ]
        );
        assert_eq!(read_dockerignore("!\n"), ["!"]);
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path("a//b/./c/.."), "a/b");
        assert_eq!(clean_path("../a"), "../a");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path("./"), ".");
        assert_eq!(clean_path("a/"), "a");
    }

    #[test]
    fn simple_and_parent_matches() {
        let mt = m(&["docs", "*.md", "build/"]);
        assert!(mt.matches("docs"));
        assert!(mt.matches("docs/a/b.txt"));
        assert!(mt.matches("README.md"));
        assert!(!mt.matches("sub/README.md"));
        assert!(mt.matches("build/x"));
        assert!(!mt.matches("src/main.rs"));
        assert!(!mt.matches("docsx"));
    }

    #[test]
    fn exclusions_last_match_wins() {
        let mt = m(&["*.md", "!README.md", "README*"]);
        assert!(mt.matches("CHANGES.md"));
        assert!(mt.matches("README.md"));
        let mt = m(&["*.md", "!README.md"]);
        assert!(!mt.matches("README.md"));
        let mt = m(&["dir", "!dir/keep"]);
        assert!(mt.matches("dir/other"));
        assert!(!mt.matches("dir/keep"));
        assert!(!mt.matches("dir/keep/inner"));
    }

    #[test]
    fn double_star() {
        let mt = m(&["**/foo"]);
        assert!(mt.matches("foo"));
        assert!(mt.matches("a/b/foo"));
        assert!(!mt.matches("a/foox"));
        let mt = m(&["a/**/b"]);
        assert!(mt.matches("a/b"));
        assert!(mt.matches("a/x/y/b"));
        assert!(!mt.matches("a/xb"));
        let mt = m(&["a/**"]);
        assert!(mt.matches("a/x/y"));
        assert!(!mt.matches("ab"));
        let mt = m(&["**"]);
        assert!(mt.matches("anything/at/all"));
        let mt = m(&["**/*.go"]);
        assert!(mt.matches("x.go"));
        assert!(mt.matches("a/b/x.go"));
        let mt = m(&["a**b"]);
        assert!(mt.matches("ab") && mt.matches("ax/b") && !mt.matches("axb"));
    }

    #[test]
    fn single_star_and_question_do_not_cross_slash() {
        let mt = m(&["a/*/c", "x?z"]);
        assert!(mt.matches("a/b/c"));
        assert!(!mt.matches("a/b/d/c"));
        assert!(mt.matches("xyz"));
        assert!(!mt.matches("x/z"));
    }

    #[test]
    fn classes_and_escapes() {
        let mt = m(&["file[0-9].txt", "[^a]bc", "\\*literal"]);
        assert!(mt.matches("file3.txt"));
        assert!(!mt.matches("filex.txt"));
        assert!(mt.matches("xbc"));
        assert!(!mt.matches("abc"));
        assert!(mt.matches("*literal"));
        assert!(!mt.matches("xliteral"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            Matcher::new(["!"]).unwrap_err(),
            IgnoreError::IllegalExclusion
        );
        assert!(matches!(
            Matcher::new(["a["]).unwrap_err(),
            IgnoreError::BadPattern { .. }
        ));
        assert!(Matcher::new(["", "  "]).unwrap().patterns().is_empty());
    }

    #[test]
    fn skip_dirs() {
        let mt = m(&["node_modules", "vendor", "!vendor/keep.txt"]);
        assert!(mt.can_skip_dir("node_modules"));
        assert!(!mt.can_skip_dir("vendor"));
        assert!(!mt.can_skip_dir("src"));
        // `**/important` could be below any directory.
        let mt = m(&["node_modules", "!**/important"]);
        assert!(!mt.can_skip_dir("node_modules"));
        let mt = m(&["*", "!*/keep"]);
        assert!(!mt.can_skip_dir("dir"));
        let mt = m(&["a", "!b"]);
        assert!(mt.can_skip_dir("a"));
        assert!(mt.has_exclusions());
    }

    #[test]
    fn candidates() {
        assert_eq!(
            ignore_file_candidates("Dockerfile"),
            ["Dockerfile.dockerignore", ".dockerignore"]
        );
        assert_eq!(
            ignore_file_candidates("build/app.Dockerfile"),
            ["build/app.Dockerfile.dockerignore", ".dockerignore"]
        );
        assert_eq!(ignore_file_candidates("-"), [".dockerignore"]);
    }

    #[test]
    fn from_text() {
        let mt = Matcher::from_dockerignore("# c\n/target\n!target/keep\n").unwrap();
        assert!(mt.matches("target/debug"));
        assert!(!mt.matches("target/keep"));
        assert!(!mt.can_skip_dir("target"));
    }
}
