//! The lexer of Go's `text/template`: text, and inside `{{ }}` the items of an action, with
//! Go's trim markers (`{{- ` and ` -}}`), comments and error texts.

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Error,
    Bool,
    Char,
    CharConstant,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // keywords
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Kind {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Dot
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Nil
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

/// One lexed item: its kind, byte offset, text and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    pub pos: usize,
    pub val: String,
    pub line: usize,
}

impl std::fmt::Display for Item {
    /// As Go's `item.String()`, used in "unexpected X in Y".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Eof => write!(f, "EOF"),
            Kind::Error => write!(f, "{}", self.val),
            k if k.is_keyword() => write!(f, "<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                write!(f, "{}...", go_quote(&head))
            }
            _ => write!(f, "{}", go_quote(&self.val)),
        }
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// `{{- `: a left trim marker.
fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

/// ` -}}`: a right trim marker (before the delimiter).
fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

/// Lexes the whole template into items, ending with `Eof` or one `Error`.
pub fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        line: 1,
        start_line: 1,
        paren_depth: 0,
        items: Vec::new(),
    };
    l.run();
    l.items
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    line: usize,
    start_line: usize,
    paren_depth: i32,
    items: Vec<Item>,
}

enum State {
    Text,
    LeftDelim,
    InsideAction,
    Done,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn backup(&mut self, c: char) {
        self.pos -= c.len_utf8();
        if c == '\n' {
            self.line -= 1;
        }
    }

    fn emit(&mut self, kind: Kind) {
        let val = self
            .input
            .get(self.start..self.pos)
            .unwrap_or("")
            .to_string();
        self.items.push(Item {
            kind,
            pos: self.start,
            val,
            line: self.start_line,
        });
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn errorf(&mut self, msg: String) -> State {
        self.items.push(Item {
            kind: Kind::Error,
            pos: self.start,
            val: msg,
            line: self.start_line,
        });
        State::Done
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn run(&mut self) {
        let mut state = State::Text;
        loop {
            state = match state {
                State::Text => self.lex_text(),
                State::LeftDelim => self.lex_left_delim(),
                State::InsideAction => self.lex_inside_action(),
                State::Done => return,
            };
        }
    }

    /// Sets pos (moving forward or back) and keeps the line count right.
    fn jump(&mut self, to: usize) {
        if to >= self.pos {
            self.line += self
                .input
                .get(self.pos..to)
                .unwrap_or("")
                .matches('\n')
                .count();
        } else {
            self.line -= self
                .input
                .get(to..self.pos)
                .unwrap_or("")
                .matches('\n')
                .count();
        }
        self.pos = to;
    }

    fn lex_text(&mut self) -> State {
        if let Some(x) = self.rest().find(LEFT) {
            if x > 0 {
                let delim = self.pos + x;
                let after = self.input.get(delim + LEFT.len()..).unwrap_or("");
                let mut text_end = delim;
                if has_left_trim(after) {
                    let text = self.input.get(self.start..delim).unwrap_or("");
                    text_end = self.start + text.trim_end_matches(is_space).len();
                }
                self.jump(text_end);
                if text_end > self.start {
                    self.emit(Kind::Text);
                }
                self.jump(delim);
                self.ignore_quiet();
            }
            return State::LeftDelim;
        }
        self.jump(self.input.len());
        if self.pos > self.start {
            self.emit(Kind::Text);
        }
        self.emit(Kind::Eof);
        State::Done
    }

    /// Drops start..pos (lines already counted by `jump`/`next`).
    fn ignore_quiet(&mut self) {
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if has_right_trim(r) && r.get(2..).is_some_and(|s| s.starts_with(RIGHT)) {
            return (true, true);
        }
        (r.starts_with(RIGHT), false)
    }

    fn lex_left_delim(&mut self) -> State {
        self.jump(self.pos + LEFT.len());
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self
            .rest()
            .get(after..)
            .is_some_and(|s| s.starts_with(LEFT_COMMENT))
        {
            self.jump(self.pos + after);
            self.ignore_quiet();
            return self.lex_comment();
        }
        self.emit(Kind::LeftDelim);
        self.jump(self.pos + after);
        self.ignore_quiet();
        self.paren_depth = 0;
        State::InsideAction
    }

    fn lex_comment(&mut self) -> State {
        self.jump(self.pos + LEFT_COMMENT.len());
        let Some(x) = self.rest().find(RIGHT_COMMENT) else {
            return self.errorf("unclosed comment".into());
        };
        self.jump(self.pos + x + RIGHT_COMMENT.len());
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.errorf("comment ends before closing delimiter".into());
        }
        if trim {
            self.jump(self.pos + 2);
        }
        self.jump(self.pos + RIGHT.len());
        if trim {
            let n = self.rest().len() - self.rest().trim_start_matches(is_space).len();
            self.jump(self.pos + n);
        }
        self.ignore_quiet();
        State::Text
    }

    fn lex_right_delim(&mut self) -> State {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.jump(self.pos + 2);
            self.ignore_quiet();
        }
        self.jump(self.pos + RIGHT.len());
        self.emit(Kind::RightDelim);
        if trim {
            let n = self.rest().len() - self.rest().trim_start_matches(is_space).len();
            self.jump(self.pos + n);
            self.ignore_quiet();
        }
        State::Text
    }

    fn lex_inside_action(&mut self) -> State {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.lex_right_delim();
            }
            return self.errorf("unclosed left paren".into());
        }
        let Some(c) = self.next() else {
            return self.errorf("unclosed action".into());
        };
        match c {
            c if is_space(c) => {
                self.backup(c);
                return self.lex_space();
            }
            '=' => self.emit(Kind::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.errorf("expected :=".into());
                }
                self.emit(Kind::Declare);
            }
            '|' => self.emit(Kind::Pipe),
            '"' => return self.lex_quote(),
            '`' => return self.lex_raw_quote(),
            '$' => return self.lex_variable(),
            '\'' => return self.lex_char(),
            '.' => {
                if self.peek().is_some_and(|r| !r.is_ascii_digit()) {
                    return self.lex_field_or_variable(Kind::Field);
                }
                self.backup(c);
                return self.lex_number();
            }
            '+' | '-' | '0'..='9' => {
                self.backup(c);
                return self.lex_number();
            }
            c if is_alnum(c) => {
                self.backup(c);
                return self.lex_identifier();
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.errorf("unexpected right paren".into());
                }
                self.emit(Kind::RightParen);
            }
            c if c.is_ascii() && !c.is_ascii_control() => self.emit(Kind::Char),
            c => return self.errorf(format!("unrecognized character in action: {}", go_rune(c))),
        }
        State::InsideAction
    }

    fn lex_space(&mut self) -> State {
        let mut n = 0;
        let mut last = ' ';
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            last = c;
            n += 1;
        }
        // a trim-marked right delimiter starts with a space: leave that space to it
        let tail = self.input.get(self.pos - 1..).unwrap_or("");
        if has_right_trim(tail) && tail.get(2..).is_some_and(|s| s.starts_with(RIGHT)) {
            self.backup(last);
            if n == 1 {
                return self.lex_right_delim();
            }
        }
        self.emit(Kind::Space);
        State::InsideAction
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn lex_identifier(&mut self) -> State {
        while let Some(c) = self.next() {
            if !is_alnum(c) {
                self.backup(c);
                break;
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\0');
            return self.errorf(format!("bad character {}", go_rune(c)));
        }
        let word = self.input.get(self.start..self.pos).unwrap_or("");
        let kind = match word {
            "block" => Kind::Block,
            "break" => Kind::Break,
            "continue" => Kind::Continue,
            "define" => Kind::Define,
            "else" => Kind::Else,
            "end" => Kind::End,
            "if" => Kind::If,
            "range" => Kind::Range,
            "nil" => Kind::Nil,
            "template" => Kind::Template,
            "with" => Kind::With,
            "true" | "false" => Kind::Bool,
            _ => Kind::Identifier,
        };
        self.emit(kind);
        State::InsideAction
    }

    fn lex_variable(&mut self) -> State {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return State::InsideAction;
        }
        self.lex_field_or_variable(Kind::Variable)
    }

    fn lex_field_or_variable(&mut self, kind: Kind) -> State {
        if self.at_terminator() {
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return State::InsideAction;
        }
        while let Some(c) = self.next() {
            if !is_alnum(c) {
                self.backup(c);
                break;
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or('\0');
            return self.errorf(format!("bad character {}", go_rune(c)));
        }
        self.emit(kind);
        State::InsideAction
    }

    fn lex_char(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.errorf("unterminated character constant".into()),
                },
                None | Some('\n') => return self.errorf("unterminated character constant".into()),
                Some('\'') => break,
                _ => {}
            }
        }
        self.emit(Kind::CharConstant);
        State::InsideAction
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return false;
        }
        true
    }

    fn lex_number(&mut self) -> State {
        if !self.scan_number() {
            let t = self.input.get(self.start..self.pos).unwrap_or("");
            return self.errorf(format!("bad number syntax: {}", go_quote(t)));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            // complex constants are not supported: report as Go does for a bad one
            self.scan_number();
            let t = self.input.get(self.start..self.pos).unwrap_or("");
            return self.errorf(format!("bad number syntax: {}", go_quote(t)));
        }
        self.emit(Kind::Number);
        State::InsideAction
    }

    fn lex_quote(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some(c) if c != '\n' => {}
                    _ => return self.errorf("unterminated quoted string".into()),
                },
                None | Some('\n') => return self.errorf("unterminated quoted string".into()),
                Some('"') => break,
                _ => {}
            }
        }
        self.emit(Kind::String);
        State::InsideAction
    }

    fn lex_raw_quote(&mut self) -> State {
        loop {
            match self.next() {
                None => return self.errorf("unterminated raw quoted string".into()),
                Some('`') => break,
                _ => {}
            }
        }
        self.emit(Kind::RawString);
        State::InsideAction
    }
}

/// Go's `%#U` of a rune: `U+0021 '!'`.
pub fn go_rune(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Kind, String)> {
        lex(s).into_iter().map(|i| (i.kind, i.val)).collect()
    }

    #[test]
    fn trims_and_actions() {
        assert_eq!(
            kinds("a  {{- .X -}}  b"),
            vec![
                (Kind::Text, "a".into()),
                (Kind::LeftDelim, "{{".into()),
                (Kind::Field, ".X".into()),
                (Kind::RightDelim, "}}".into()),
                (Kind::Text, "b".into()),
                (Kind::Eof, "".into()),
            ]
        );
        assert_eq!(
            kinds("{{range $i, $v := .L}}"),
            vec![
                (Kind::LeftDelim, "{{".into()),
                (Kind::Range, "range".into()),
                (Kind::Space, " ".into()),
                (Kind::Variable, "$i".into()),
                (Kind::Char, ",".into()),
                (Kind::Space, " ".into()),
                (Kind::Variable, "$v".into()),
                (Kind::Space, " ".into()),
                (Kind::Declare, ":=".into()),
                (Kind::Space, " ".into()),
                (Kind::Field, ".L".into()),
                (Kind::RightDelim, "}}".into()),
                (Kind::Eof, "".into()),
            ]
        );
        assert_eq!(kinds("x{{/* c */}}y").len(), 3);
        assert_eq!(
            kinds("{{.X").last().map(|i| i.1.clone()),
            Some("unclosed action".into())
        );
    }
}
