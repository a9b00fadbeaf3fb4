//! Shell wildcard patterns of `${v#p}`, `${v%p}` and `${v/p/r}`: `?` is one
//! character, `*` any string, `\*`, `\?` and `\\` literal; no bracket
//! expressions (as BuildKit). Matching is a linear NFA walk, so a hostile
//! pattern cannot make it backtrack exponentially.

use super::ExpandFailure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyOne,
    AnyString,
}

#[derive(Debug, Clone)]
pub(super) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles a pattern taken raw (escapes kept) from a substitution.
    pub(super) fn compile(pattern: &str) -> Result<Pattern, ExpandFailure> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => tokens.push(Token::AnyString),
                '?' => tokens.push(Token::AnyOne),
                '\\' => match chars.peek().copied() {
                    // `}` and `/` are escaped for the `${}` syntax only.
                    Some('}') | Some('/') => {}
                    Some(n @ ('*' | '?' | '\\')) => {
                        chars.next();
                        tokens.push(Token::Literal(n));
                    }
                    Some(n) => {
                        return Err(ExpandFailure::InvalidPattern {
                            pattern: pattern.to_string(),
                            reason: format!("invalid escape '\\{n}'"),
                        })
                    }
                    None => {
                        return Err(ExpandFailure::InvalidPattern {
                            pattern: pattern.to_string(),
                            reason: "invalid escape '\\'".to_string(),
                        })
                    }
                },
                c => tokens.push(Token::Literal(c)),
            }
        }
        Ok(Pattern { tokens })
    }

    /// The pattern read backwards (for suffix matching).
    pub(super) fn reversed(&self) -> Pattern {
        let mut tokens = self.tokens.clone();
        tokens.reverse();
        Pattern { tokens }
    }

    /// Closure of the NFA state set under `*` (which may match nothing).
    fn close(&self, states: &mut [bool]) {
        for i in 0..self.tokens.len() {
            if states[i] && self.tokens[i] == Token::AnyString {
                states[i + 1] = true;
            }
        }
    }

    /// Lengths (in chars) of the prefixes of `s` that the pattern matches
    /// entirely, in increasing order, computed in one pass.
    fn prefix_match_lengths(&self, s: &[char]) -> Vec<usize> {
        let n = self.tokens.len();
        let mut states = vec![false; n + 1];
        states[0] = true;
        self.close(&mut states);
        let mut out = Vec::new();
        if states[n] {
            out.push(0);
        }
        for (pos, &c) in s.iter().enumerate() {
            let mut next = vec![false; n + 1];
            let mut any = false;
            for i in 0..n {
                if !states[i] {
                    continue;
                }
                match self.tokens[i] {
                    Token::AnyString => {
                        next[i] = true;
                        any = true;
                    }
                    Token::AnyOne => {
                        next[i + 1] = true;
                        any = true;
                    }
                    Token::Literal(l) if l == c => {
                        next[i + 1] = true;
                        any = true;
                    }
                    Token::Literal(_) => {}
                }
            }
            if !any {
                break;
            }
            self.close(&mut next);
            states = next;
            if states[n] {
                out.push(pos + 1);
            }
        }
        out
    }

    /// Shortest (or, if `longest`, longest) prefix of `s` the pattern matches.
    pub(super) fn match_prefix(&self, s: &[char], longest: bool) -> Option<usize> {
        let lengths = self.prefix_match_lengths(s);
        if longest {
            lengths.last().copied()
        } else {
            lengths.first().copied()
        }
    }

    /// Leftmost match in `s` starting at or after `from`, longest at that
    /// start (Go's leftmost-first with greedy stars): `(start, end)`.
    pub(super) fn find(&self, s: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=s.len()).find_map(|start| {
            let rest = s.get(start..)?;
            self.match_prefix(rest, true)
                .map(|len| (start, start + len))
        })
    }
}

/// `${v#p}` / `${v##p}`: the value without its shortest / longest matching prefix.
pub(super) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, ExpandFailure> {
    let p = Pattern::compile(pattern)?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match p.match_prefix(&chars, greedy) {
        Some(len) => chars.get(len..).unwrap_or_default().iter().collect(),
        None => value.to_string(),
    })
}

/// `${v%p}` / `${v%%p}`: the value without its shortest / longest matching suffix.
pub(super) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
) -> Result<String, ExpandFailure> {
    let p = Pattern::compile(pattern)?.reversed();
    let mut chars: Vec<char> = value.chars().collect();
    chars.reverse();
    Ok(match p.match_prefix(&chars, greedy) {
        Some(len) => {
            let mut kept: Vec<char> = chars.get(len..).unwrap_or_default().to_vec();
            kept.reverse();
            kept.into_iter().collect()
        }
        None => value.to_string(),
    })
}

/// `${v/p/r}` and `${v//p/r}`. Like Go's regexp replace: an empty match
/// right after a previous match is skipped.
pub(super) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, ExpandFailure> {
    let p = Pattern::compile(pattern)?;
    let s: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut pos = 0;
    let mut last_end: Option<usize> = None;
    while pos <= s.len() {
        let Some((start, end)) = p.find(&s, pos) else {
            break;
        };
        if start == end && last_end == Some(start) {
            // Empty match abutting the previous one: step over one char.
            match s.get(start) {
                Some(&c) => {
                    out.push(c);
                    pos = start + 1;
                    continue;
                }
                None => break,
            }
        }
        out.extend(s.get(pos..start).unwrap_or_default());
        out.push_str(replacement);
        last_end = Some(end);
        if !all {
            pos = end;
            out.extend(s.get(pos..).unwrap_or_default());
            return Ok(out);
        }
        if start == end {
            match s.get(start) {
                Some(&c) => out.push(c),
                None => return Ok(out),
            }
            pos = start + 1;
        } else {
            pos = end;
        }
    }
    out.extend(s.get(pos..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_shortest_and_longest() {
        assert_eq!(trim_prefix("*x", "xxyy", false).unwrap(), "xyy");
        assert_eq!(trim_prefix("*x", "xxyy", true).unwrap(), "yy");
        assert_eq!(trim_prefix("*", "xxyy", false).unwrap(), "xxyy");
        assert_eq!(trim_prefix("?\\?", "???y", false).unwrap(), "?y");
        assert_eq!(trim_prefix("z", "xxyy", false).unwrap(), "xxyy");
    }

    #[test]
    fn suffix_shortest_and_longest() {
        assert_eq!(trim_suffix("y*", "xxyy", false).unwrap(), "xxy");
        assert_eq!(trim_suffix("y*", "xxyy", true).unwrap(), "xx");
        assert_eq!(trim_suffix("\\**\\*", "a***yy*", true).unwrap(), "a");
    }

    #[test]
    fn bad_escape_is_an_error() {
        assert!(Pattern::compile("\\x").is_err());
        assert!(Pattern::compile("\\").is_err());
        assert!(Pattern::compile("\\}\\/").is_ok());
    }

    #[test]
    fn replace_first_and_all() {
        assert_eq!(
            replace("/?/", "/a/foo/b/c.txt", "/", false).unwrap(),
            "/foo/b/c.txt"
        );
        assert_eq!(
            replace("/?/", "/a/foo/b/c.txt", "/", true).unwrap(),
            "/foo/c.txt"
        );
        assert_eq!(replace("", "xxyy", "ww", false).unwrap(), "wwxxyy");
        assert_eq!(replace("", "xxyy", "", true).unwrap(), "xxyy");
        assert_eq!(replace("", "ab", "-", true).unwrap(), "-a-b-");
        assert_eq!(
            replace("\\*/", "/foo*/*/*.txt", ".", true).unwrap(),
            "/foo..*.txt"
        );
    }

    #[test]
    fn many_stars_stay_linear() {
        let pattern = "*a".repeat(200);
        let value = "b".repeat(2000);
        assert_eq!(trim_prefix(&pattern, &value, true).unwrap(), value);
    }
}
