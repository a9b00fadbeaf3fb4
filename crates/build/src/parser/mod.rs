//! The Dockerfile parser: text → a list of [`Node`]s, one per instruction,
//! with BuildKit's `frontend/dockerfile/parser` semantics.
//!
//! * Parser directives at the very top ([`directives`]).
//! * Comments (`#` as the first non-blank character), empty lines, a UTF-8
//!   BOM, leading whitespace.
//! * Line continuation with the escape character as the last non-blank
//!   character (unless itself escaped); comment and empty lines inside a
//!   continuation are skipped (empty ones give a warning, as BuildKit).
//! * Keyword, `--flags`, then arguments in the form the instruction uses
//!   (JSON array, whitespace list, `key=value` words, one string).
//! * Heredocs for RUN/COPY/ADD (and ONBUILD of those) in shell form.
//!
//! Unknown keywords are kept here; [`crate::instructions`] rejects them.

mod directives;
mod heredoc;
mod line_parsers;
#[cfg(test)]
mod tests;

pub use directives::Directive;
pub use heredoc::{chomp, parse_heredoc, Heredoc};

/// What went wrong, in BuildKit's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscapeToken(String),
    #[error("file with no instructions")]
    NoInstructions,
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    #[error("{0} must have two arguments")]
    TwoArguments(String),
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    #[error("dockerfile line greater than max allowed size of {}", MAX_LINE - 1)]
    LineTooLong,
    #[error(transparent)]
    Heredoc(#[from] crate::shell_words::ExpandError),
}

/// A parse error and the (1-based) lines it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub end_line: usize,
    pub kind: ParseErrorKind,
}

/// Go's `bufio.MaxScanTokenSize`: a longer line is an error.
pub const MAX_LINE: usize = 64 * 1024;

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The keyword as written (`run`, `RUN`, `Run`...).
    pub keyword: String,
    /// `--name=value` words before the arguments, quotes removed.
    pub flags: Vec<String>,
    /// Arguments (BuildKit's flattened `Next` list). ENV/LABEL give
    /// key, value, separator triples; ONBUILD gives the trigger's keyword
    /// and arguments.
    pub args: Vec<String>,
    /// Arguments were a JSON array.
    pub json: bool,
    /// ONBUILD's trigger instruction.
    pub sub: Option<Box<Node>>,
    /// Heredocs the line opened, with their content.
    pub heredocs: Vec<Heredoc>,
    /// The logical line: continuations joined, comments dropped.
    pub original: String,
    /// First line (1-based).
    pub start_line: usize,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
    /// Comment lines right before the instruction.
    pub comments: Vec<String>,
}

impl Node {
    /// The keyword lower-cased (`run`).
    pub fn command(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub message: String,
    pub line: usize,
}

/// The parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    pub nodes: Vec<Node>,
    /// `\` or `` ` `` (from `# escape=`).
    pub escape: char,
    pub directives: Vec<Directive>,
    pub warnings: Vec<Warning>,
}

impl Ast {
    /// The value of a directive (`syntax`, `escape`, `check`), if present.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .map(|d| d.value.as_str())
    }
}

struct State {
    escape: char,
    directives: directives::DirectiveParser,
}

impl State {
    /// Directive check, then comment removal (a comment line becomes empty).
    fn process_line<'a>(
        &mut self,
        raw: &'a str,
        strip_left: bool,
        line_no: usize,
    ) -> Result<(&'a str, bool), ParseErrorKind> {
        let mut token = trim_newline(raw);
        if strip_left {
            token = token.trim_start();
        }
        let directive = self.directives.parse_line(token, line_no)?;
        if let Some(d) = &directive {
            if d.name == "escape" {
                self.escape = match d.value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(ParseErrorKind::InvalidEscapeToken(other.to_string())),
                };
            }
        }
        let token = if is_comment(token) { "" } else { token };
        Ok((token, directive.is_some()))
    }

    /// Strips a trailing line-continuation escape: `([^E])E[ \t]*$|^E[ \t]*$`.
    /// Returns the line and whether it ends the instruction.
    fn trim_continuation<'a>(&self, line: &'a str) -> (&'a str, bool) {
        let body = line.trim_end_matches([' ', '\t']);
        let Some(before) = body.strip_suffix(self.escape) else {
            return (line, true);
        };
        if before.ends_with(self.escape) {
            (line, true)
        } else {
            (before, false)
        }
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn err(line: usize, end_line: usize, kind: ParseErrorKind) -> ParseError {
    ParseError {
        line,
        end_line: end_line.max(line),
        kind,
    }
}

/// Parses Dockerfile text into nodes. Never panics.
pub fn parse(text: &str) -> Result<Ast, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    let mut state = State {
        escape: '\\',
        directives: directives::DirectiveParser::default(),
    };
    let mut current = 0usize;
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    let mut next_line = |current: usize| -> Result<Option<&str>, ParseError> {
        match lines.next() {
            Some(l) if l.len() > MAX_LINE => Err(err(current + 1, 0, ParseErrorKind::LineTooLong)),
            other => Ok(other),
        }
    };

    while let Some(raw) = next_line(current)? {
        if is_comment(raw) {
            let c = raw.trim_start().trim_start_matches('#').trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        let (processed, was_directive) = state
            .process_line(raw, true, current + 1)
            .map_err(|k| err(current + 1, 0, k))?;
        if was_directive {
            comments.pop();
        }
        current += 1;
        let start = current;
        let (first, mut end_of_line) = state.trim_continuation(processed);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = next_line(current)? else {
                break;
            };
            let (processed, _) = state
                .process_line(raw, false, current + 1)
                .map_err(|k| err(current + 1, 0, k))?;
            current += 1;
            if is_comment(raw) {
                continue;
            }
            if processed.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, eol) = state.trim_continuation(processed);
            end_of_line = eol;
            line.push_str(part);
        }
        if empty_continuation {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {line}"),
                line: current,
            });
        }

        let mut node = new_node(&line, state.escape, std::mem::take(&mut comments))
            .map_err(|k| err(start, current, k))?;

        if can_contain_heredoc(&node) && line.contains("<<") {
            let docs =
                heredoc::heredocs_from_line(&line).map_err(|e| err(start, current, e.into()))?;
            for mut doc in docs {
                let mut terminated = false;
                while let Some(raw) = next_line(current)? {
                    current += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err(err(start, current, ParseErrorKind::UnterminatedHeredoc));
                }
                node.heredocs.push(doc);
            }
        }
        node.start_line = start;
        node.end_line = current;
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(err(current.max(1), 0, ParseErrorKind::NoInstructions));
    }
    Ok(Ast {
        nodes,
        escape: state.escape,
        directives: state.directives.found,
        warnings,
    })
}

/// Heredocs only for RUN/COPY/ADD in shell form, directly or under ONBUILD.
fn can_contain_heredoc(node: &Node) -> bool {
    let node = match (&node.sub, node.command().as_str()) {
        (Some(sub), "onbuild") => sub,
        _ => node,
    };
    matches!(node.command().as_str(), "run" | "copy" | "add") && !node.json
}

/// Maximum ONBUILD nesting the parser follows (`ONBUILD ONBUILD ...` is
/// rejected later anyway; this only bounds recursion).
const MAX_SUB_DEPTH: usize = 8;

fn new_node(line: &str, escape: char, comments: Vec<String>) -> Result<Node, ParseErrorKind> {
    new_node_at_depth(line, escape, comments, 0)
}

fn new_node_at_depth(
    line: &str,
    escape: char,
    comments: Vec<String>,
    depth: usize,
) -> Result<Node, ParseErrorKind> {
    let (keyword, flags, rest) = line_parsers::split_command(line, escape);
    let cmd = keyword.to_ascii_lowercase();
    let mut node = Node {
        keyword,
        flags,
        original: line.to_string(),
        comments,
        ..Node::default()
    };
    if cmd == "onbuild" {
        if !rest.is_empty() && depth < MAX_SUB_DEPTH {
            let sub = new_node_at_depth(&rest, escape, Vec::new(), depth + 1)?;
            node.args.push(sub.keyword.clone());
            node.args.extend(sub.args.iter().cloned());
            node.json = false;
            node.sub = Some(Box::new(sub));
        } else if !rest.is_empty() {
            node.args = rest.split_whitespace().map(str::to_string).collect();
        }
        return Ok(node);
    }
    let parsed = line_parsers::parse_args(&cmd, &rest, escape)?;
    node.args = parsed.args;
    node.json = parsed.json;
    Ok(node)
}
