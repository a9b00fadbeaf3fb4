//! Heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) in RUN, COPY and ADD.

use crate::shell_words::{EmptyEnv, Lex};

/// One heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, unquoted (`EOF` for `<<"EOF"`).
    pub name: String,
    /// File descriptor written before `<<` (`3<<EOF`), 0 if none.
    pub file_descriptor: u32,
    /// False when any part of the delimiter was quoted: no expansion.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the content (and terminator).
    pub chomp: bool,
    /// The lines between the instruction and the terminator, each with its
    /// line ending, tabs not yet stripped (see [`Heredoc::chomped_content`]).
    pub content: String,
}

impl Heredoc {
    /// The content with leading tabs removed from every line when `chomp`.
    pub fn chomped_content(&self) -> String {
        if self.chomp {
            chomp(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Removes the leading tabs of every line (`(?m)^\t+`).
pub fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// Recognises one word as a heredoc operator: `^(\d*)<<(-?)([^<]*)$` with
/// a non-empty single-word delimiter. `Ok(None)` if it is not one.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, crate::shell_words::ExpandError> {
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, rest) = word.split_at(digits_end);
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = digits.parse::<u32>().unwrap_or(0);

    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &EmptyEnv)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &EmptyEnv)?;
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = match raw.as_slice() {
        [raw_name] => quotes(name) == quotes(raw_name),
        _ => true,
    };
    Ok(Some(Heredoc {
        name: name.clone(),
        file_descriptor: fd,
        expand,
        chomp,
        content: String::new(),
    }))
}

/// The heredocs a (non-JSON) RUN/COPY/ADD line opens, in order. The line is
/// split like a shell would (quotes and escapes kept); a line that does not
/// lex has none.
pub(super) fn heredocs_from_line(
    line: &str,
) -> Result<Vec<Heredoc>, crate::shell_words::ExpandError> {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &EmptyEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(word: &str) -> Option<Heredoc> {
        parse_heredoc(word).unwrap()
    }

    #[test]
    fn operator_forms() {
        let d = h("<<EOF").unwrap();
        assert_eq!(
            (d.name.as_str(), d.expand, d.chomp, d.file_descriptor),
            ("EOF", true, false, 0)
        );
        let d = h("<<-EOF").unwrap();
        assert!(d.chomp);
        let d = h("<<'EOF'").unwrap();
        assert_eq!((d.name.as_str(), d.expand), ("EOF", false));
        let d = h("<<\"EOF\"").unwrap();
        assert_eq!((d.name.as_str(), d.expand), ("EOF", false));
        let d = h("<<E\"O\"F").unwrap();
        assert_eq!((d.name.as_str(), d.expand), ("EOF", false));
        let d = h("3<<EOF").unwrap();
        assert_eq!(d.file_descriptor, 3);
    }

    #[test]
    fn not_heredocs() {
        assert_eq!(h("<<"), None);
        assert_eq!(h("<<-"), None);
        assert_eq!(h("<<<EOF"), None);
        assert_eq!(h("a<<EOF"), None);
        assert_eq!(h("<<'A B' "), Some(h("<<'A B'").unwrap()));
        assert_eq!(h("<<A B"), None);
    }

    #[test]
    fn line_with_several() {
        let docs = heredocs_from_line("RUN <<A cat /dev/stdin - <<-'B'").unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|d| (d.name.as_str(), d.chomp, d.expand))
            .collect();
        assert_eq!(names, [("A", false, true), ("B", true, false)]);
        assert!(heredocs_from_line("RUN echo '<<EOF'").unwrap().is_empty());
        assert!(heredocs_from_line("RUN echo \"unterminated <<EOF")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn chomping() {
        assert_eq!(chomp("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
