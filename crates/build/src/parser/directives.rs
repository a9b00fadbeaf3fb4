//! Parser directives (`# syntax=`, `# escape=`, `# check=`): only at the very
//! top of the file, before any instruction, comment or empty line; keys are
//! case-insensitive; each may appear once.

use super::ParseErrorKind;

/// A parser directive found at the top of the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased key: `syntax`, `escape` or `check`.
    pub name: String,
    /// Value, trimmed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

const VALID: [&str; 3] = ["syntax", "escape", "check"];

/// State of directive recognition while the first lines are read.
#[derive(Debug, Default)]
pub(super) struct DirectiveParser {
    done: bool,
    pub(super) found: Vec<Directive>,
}

impl DirectiveParser {
    /// Looks at one line (leading whitespace already stripped). Returns the
    /// directive it holds, if any; the first line that is not a directive
    /// ends recognition for good.
    pub(super) fn parse_line(
        &mut self,
        line: &str,
        line_no: usize,
    ) -> Result<Option<Directive>, ParseErrorKind> {
        if self.done {
            return Ok(None);
        }
        let Some((key, value)) = line.strip_prefix('#').and_then(split_directive) else {
            self.done = true;
            return Ok(None);
        };
        let name = key.to_ascii_lowercase();
        if !VALID.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(ParseErrorKind::DuplicateDirective(name));
        }
        let d = Directive {
            name,
            value: value.to_string(),
            line: line_no,
        };
        self.found.push(d.clone());
        Ok(Some(d))
    }
}

/// Go's `\s`: ASCII whitespace only.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// `^\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` on the text after `#`.
fn split_directive(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start_matches(is_go_space);
    let key_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(text.len(), |(i, _)| i);
    let (key, rest) = text.split_at(key_end);
    if key.is_empty() {
        return None;
    }
    let value = rest
        .trim_start_matches(is_go_space)
        .strip_prefix('=')?
        .trim_matches(is_go_space);
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_forms() {
        assert_eq!(split_directive(" escape=`"), Some(("escape", "`")));
        assert_eq!(split_directive("escape = ` "), Some(("escape", "`")));
        assert_eq!(
            split_directive("Syntax=docker/dockerfile:1"),
            Some(("Syntax", "docker/dockerfile:1"))
        );
        assert_eq!(split_directive("escape="), None);
        assert_eq!(split_directive("1escape=x"), None);
        assert_eq!(split_directive("just a comment"), None);
        assert_eq!(
            split_directive("check=skip=JSONArgsRecommended;error=true"),
            Some(("check", "skip=JSONArgsRecommended;error=true"))
        );
    }

    #[test]
    fn unknown_key_ends_directives() {
        let mut p = DirectiveParser::default();
        assert_eq!(p.parse_line("# foo=bar", 1).unwrap(), None);
        assert_eq!(p.parse_line("# escape=`", 2).unwrap(), None);
    }

    #[test]
    fn duplicate_is_an_error() {
        let mut p = DirectiveParser::default();
        assert!(p.parse_line("# ESCAPE=`", 1).unwrap().is_some());
        assert_eq!(
            p.parse_line("# escape=\\", 2),
            Err(ParseErrorKind::DuplicateDirective("escape".into()))
        );
    }
}
