//! The parser of Go's `text/template`, over the lexer's items, with Go's error texts
//! (`template: :LINE: ...`).

use std::collections::HashMap;

use super::ast::{Arg, Cmd, Control, List, Node, Pipe};
use super::lex::{go_quote, lex, Item, Kind};
use super::value::Value;

/// A parsed template: its main list and the `{{define}}`d ones.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: List,
    pub defs: HashMap<String, List>,
}

enum End {
    End,
    Else,
}

enum Parsed {
    Node(Node),
    End(End),
}

struct Parser<'a> {
    items: Vec<Item>,
    idx: usize,
    token: [Item; 3],
    peek_count: usize,
    vars: Vec<String>,
    range_depth: usize,
    action_line: usize,
    has_func: &'a dyn Fn(&str) -> bool,
    defs: HashMap<String, List>,
    name: &'a str,
}

type PResult<T> = Result<T, String>;

/// Parses `text`; `has_func` tells which function names exist.
pub fn parse(name: &str, text: &str, has_func: &dyn Fn(&str) -> bool) -> Result<Tree, String> {
    let eof = Item {
        kind: Kind::Eof,
        pos: 0,
        val: String::new(),
        line: 1,
    };
    let mut p = Parser {
        items: lex(text),
        idx: 0,
        token: [eof.clone(), eof.clone(), eof],
        peek_count: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        action_line: 0,
        has_func,
        defs: HashMap::new(),
        name,
    };
    let root = p.parse_top()?;
    Ok(Tree { root, defs: p.defs })
}

impl Parser<'_> {
    fn lex_next(&mut self) -> Item {
        match self.items.get(self.idx) {
            Some(i) => {
                self.idx += 1;
                i.clone()
            }
            None => self.items.last().cloned().unwrap_or(Item {
                kind: Kind::Eof,
                pos: 0,
                val: String::new(),
                line: 1,
            }),
        }
    }

    fn next(&mut self) -> Item {
        if self.peek_count > 0 {
            self.peek_count -= 1;
        } else {
            self.token[0] = self.lex_next();
        }
        self.token[self.peek_count].clone()
    }

    fn backup(&mut self) {
        self.peek_count += 1;
    }

    fn backup2(&mut self, t1: Item) {
        self.token[1] = t1;
        self.peek_count = 2;
    }

    fn backup3(&mut self, t2: Item, t1: Item) {
        self.token[1] = t1;
        self.token[2] = t2;
        self.peek_count = 3;
    }

    fn peek(&mut self) -> Item {
        if self.peek_count > 0 {
            return self.token[self.peek_count - 1].clone();
        }
        self.peek_count = 1;
        self.token[0] = self.lex_next();
        self.token[0].clone()
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let t = self.next();
            if t.kind != Kind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn errorf<T>(&self, msg: String) -> PResult<T> {
        Err(format!(
            "template: {}:{}: {msg}",
            self.name, self.token[0].line
        ))
    }

    fn unexpected<T>(&self, token: &Item, context: &str) -> PResult<T> {
        if token.kind == Kind::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != token.line {
                extra = format!(" in action started at {}:{}", self.name, self.action_line);
                if token.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{token}{extra}"));
        }
        self.errorf(format!("unexpected {token} in {context}"))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Item> {
        let t = self.next_non_space();
        if t.kind != kind {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    fn parse_top(&mut self) -> PResult<List> {
        let mut root = Vec::new();
        while self.peek().kind != Kind::Eof {
            if self.peek().kind == Kind::LeftDelim {
                let delim = self.next();
                if self.next_non_space().kind == Kind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.backup2(delim);
            }
            match self.text_or_action()? {
                Parsed::End(End::End) => return self.errorf("unexpected {{end}}".into()),
                Parsed::End(End::Else) => return self.errorf("unexpected {{else}}".into()),
                Parsed::Node(n) => root.push(n),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        let context = "define clause";
        let t = self.next_non_space();
        if t.kind != Kind::String && t.kind != Kind::RawString {
            return self.unexpected(&t, context);
        }
        let name = self.unquote(&t)?;
        self.expect(Kind::RightDelim, context)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if let End::Else = end {
            return self.errorf(format!("unexpected {{{{else}}}} in {context}"));
        }
        self.defs.insert(name, list);
        Ok(())
    }

    fn item_list(&mut self) -> PResult<(List, End)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Parsed::End(e) => return Ok((list, e)),
                Parsed::Node(n) => list.push(n),
            }
        }
        self.errorf("unexpected EOF".into())
    }

    fn text_or_action(&mut self) -> PResult<Parsed> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Text => Ok(Parsed::Node(Node::Text(t.val))),
            Kind::LeftDelim => {
                self.action_line = t.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self) -> PResult<Parsed> {
        let t = self.next_non_space();
        match t.kind {
            Kind::Block => return self.block_control().map(Parsed::Node),
            Kind::Break | Kind::Continue => {
                let word = if t.kind == Kind::Break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let n = self.next_non_space();
                if n.kind != Kind::RightDelim {
                    return self.unexpected(&n, word);
                }
                if self.range_depth == 0 {
                    return self.errorf(format!("{word} outside {{{{range}}}}"));
                }
                return Ok(Parsed::Node(if t.kind == Kind::Break {
                    Node::Break(t.pos)
                } else {
                    Node::Continue(t.pos)
                }));
            }
            Kind::Else => return self.else_control(),
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Parsed::End(End::End));
            }
            Kind::If => return self.parse_control("if").map(|c| Parsed::Node(Node::If(c))),
            Kind::Range => {
                return self
                    .parse_control("range")
                    .map(|c| Parsed::Node(Node::Range(c)))
            }
            Kind::With => {
                return self
                    .parse_control("with")
                    .map(|c| Parsed::Node(Node::With(c)))
            }
            Kind::Template => return self.template_control().map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", Kind::RightDelim)?;
        Ok(Parsed::Node(Node::Action(pipe)))
    }

    fn else_control(&mut self) -> PResult<Parsed> {
        let peek = self.peek_non_space();
        if peek.kind == Kind::If || peek.kind == Kind::With {
            return Ok(Parsed::End(End::Else));
        }
        self.expect(Kind::RightDelim, "else")?;
        Ok(Parsed::End(End::Else))
    }

    fn parse_control(&mut self, context: &str) -> PResult<Control> {
        let nvars = self.vars.len();
        let r = self.parse_control_inner(context);
        self.vars.truncate(nvars);
        r
    }

    fn parse_control_inner(&mut self, context: &str) -> PResult<Control> {
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let r = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = r?;
        let mut else_list = None;
        if let End::Else = next {
            if context == "if" && self.peek().kind == Kind::If {
                self.next();
                let c = self.parse_control("if")?;
                else_list = Some(vec![Node::If(c)]);
            } else if context == "with" && self.peek().kind == Kind::With {
                self.next();
                let c = self.parse_control("with")?;
                else_list = Some(vec![Node::With(c)]);
            } else {
                let (l, next) = self.item_list()?;
                if let End::Else = next {
                    return self.errorf("expected end; found {{else}}".into());
                }
                else_list = Some(l);
            }
        }
        Ok(Control {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn template_control(&mut self) -> PResult<Node> {
        let context = "template clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, context)?;
        let pipe = if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            Some(self.pipeline(context, Kind::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe,
        })
    }

    fn block_control(&mut self) -> PResult<Node> {
        let context = "block clause";
        let t = self.next_non_space();
        let name = self.template_name(&t, context)?;
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if let End::Else = end {
            return self.errorf(format!("unexpected {{{{else}}}} in {context}"));
        }
        self.defs.insert(name.clone(), list);
        Ok(Node::Template {
            pos: t.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_name(&mut self, t: &Item, context: &str) -> PResult<String> {
        match t.kind {
            Kind::String | Kind::RawString => self.unquote(t),
            _ => self.unexpected(t, context),
        }
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let t = self.peek_non_space();
        let mut pipe = Pipe {
            pos: t.pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            self.next();
            let after = self.peek();
            let next = self.peek_non_space();
            if next.kind == Kind::Assign || next.kind == Kind::Declare {
                pipe.is_assign = next.kind == Kind::Assign;
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
            } else if next.kind == Kind::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().kind {
                        Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                        _ => return self.errorf("range can only initialize variables".into()),
                    }
                }
                return self.errorf(format!("too many declarations in {context}"));
            } else if after.kind == Kind::Space {
                self.backup3(v, after);
            } else {
                self.backup2(v);
            }
            break;
        }
        loop {
            let t = self.next_non_space();
            match t.kind {
                k if k == end => {
                    self.check_pipeline(&pipe, context)?;
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool(..)
                        | Arg::Dot(_)
                        | Arg::Nil(_)
                        | Arg::Number { .. }
                        | Arg::Str { .. }
                )
            ) {
                return self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Cmd> {
        let mut cmd = Cmd {
            pos: self.peek_non_space().pos,
            args: Vec::new(),
        };
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.errorf("empty command".into());
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            let f = self.next().val;
            fields.extend(f.trim_start_matches('.').split('.').map(String::from));
        }
        Ok(Some(match node {
            Arg::Field { idents, .. } => {
                let mut idents = idents;
                idents.extend(fields);
                Arg::Field { pos, idents }
            }
            Arg::Var {
                name, fields: f0, ..
            } => {
                let mut all = f0;
                all.extend(fields);
                Arg::Var {
                    pos,
                    name,
                    fields: all,
                }
            }
            n @ (Arg::Bool(..)
            | Arg::Str { .. }
            | Arg::Number { .. }
            | Arg::Nil(_)
            | Arg::Dot(_)) => {
                return self.errorf(format!(
                    "unexpected . after term {}",
                    go_quote(&n.to_string())
                ))
            }
            n => Arg::Chain {
                pos,
                node: Box::new(n),
                fields,
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.next_non_space();
        Ok(Some(match t.kind {
            Kind::Identifier => {
                if !(self.has_func)(&t.val) {
                    return self.errorf(format!("function {} not defined", go_quote(&t.val)));
                }
                Arg::Ident {
                    pos: t.pos,
                    name: t.val,
                }
            }
            Kind::Dot => Arg::Dot(t.pos),
            Kind::Nil => Arg::Nil(t.pos),
            Kind::Variable => {
                let mut parts = t.val.split('.');
                let name = parts.next().unwrap_or("$").to_string();
                if !self.vars.contains(&name) {
                    return self.errorf(format!("undefined variable {}", go_quote(&name)));
                }
                Arg::Var {
                    pos: t.pos,
                    name,
                    fields: parts.map(String::from).collect(),
                }
            }
            Kind::Field => Arg::Field {
                pos: t.pos,
                idents: t
                    .val
                    .trim_start_matches('.')
                    .split('.')
                    .map(String::from)
                    .collect(),
            },
            Kind::Bool => Arg::Bool(t.pos, t.val == "true"),
            Kind::CharConstant | Kind::Number => {
                let value = self.number(&t)?;
                Arg::Number {
                    pos: t.pos,
                    text: t.val,
                    value,
                }
            }
            Kind::LeftParen => {
                let p = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                Arg::Pipe(Box::new(p))
            }
            Kind::String | Kind::RawString => {
                let value = self.unquote(&t)?;
                Arg::Str {
                    pos: t.pos,
                    quoted: t.val,
                    value,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn unquote(&self, t: &Item) -> PResult<String> {
        match unquote(&t.val) {
            Some(s) => Ok(s),
            None => self.errorf("invalid syntax".into()),
        }
    }

    fn number(&self, t: &Item) -> PResult<Value> {
        if t.kind == Kind::CharConstant {
            let inner = t.val.get(1..t.val.len().saturating_sub(1)).unwrap_or("");
            let s = unquote_body(inner, '\'');
            let mut cs = s.as_deref().unwrap_or("").chars();
            return match (cs.next(), cs.next()) {
                (Some(c), None) => Ok(Value::Int(c as i64)),
                _ => self.errorf(format!("malformed character constant: {}", t.val)),
            };
        }
        match parse_number(&t.val) {
            Ok(v) => Ok(v),
            Err(e) => self.errorf(e),
        }
    }
}

/// A Go number constant as the template executes it: an int, or a float64 when written with
/// a point or an exponent.
fn parse_number(text: &str) -> Result<Value, String> {
    let illegal = || format!("illegal number syntax: {}", go_quote(text));
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_string()),
        None => (false, clean.trim_start_matches('+').to_string()),
    };
    let lower = body.to_ascii_lowercase();
    let radix_int = |digits: &str, radix: u32| -> Option<u64> {
        if digits.is_empty() {
            return None;
        }
        u64::from_str_radix(digits, radix).ok()
    };
    let uint = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains('.') || h.contains('p') {
            return Err(illegal());
        }
        radix_int(h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        radix_int(o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        radix_int(b, 2)
    } else if lower.contains(['.', 'e']) {
        None
    } else if lower.len() > 1 && lower.starts_with('0') {
        radix_int(&lower[1..], 8)
    } else {
        radix_int(&lower, 10)
    };
    if let Some(u) = uint {
        return if neg {
            if u <= i64::MAX as u64 + 1 {
                Ok(Value::Int((-(u as i128)) as i64))
            } else {
                Err(illegal())
            }
        } else {
            Ok(i64::try_from(u).map_or(Value::Uint(u), Value::Int))
        };
    }
    if lower.contains(['.', 'e']) && !lower.starts_with("0x") {
        if let Ok(f) = lower.parse::<f64>() {
            return Ok(Value::Float(if neg { -f } else { f }));
        }
    }
    Err(illegal())
}

/// Go's `strconv.Unquote` of a `"..."` or `` `...` `` string.
pub fn unquote(s: &str) -> Option<String> {
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        return Some(s[1..s.len() - 1].replace('\r', ""));
    }
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return unquote_body(&s[1..s.len() - 1], '"');
    }
    None
}

fn unquote_body(s: &str, quote: char) -> Option<String> {
    let mut out = String::new();
    let mut cs = s.chars();
    while let Some(c) = cs.next() {
        if c == quote || c == '\n' {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = cs.next()?;
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '\'' if quote == '\'' => out.push('\''),
            '"' if quote == '"' => out.push('"'),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n).filter_map(|_| cs.next()).collect();
                if hex.len() != n {
                    return None;
                }
                let v = u32::from_str_radix(&hex, 16).ok()?;
                if e == 'x' {
                    // a byte: only ASCII keeps the string valid UTF-8
                    out.push(char::from_u32(v)?);
                } else {
                    out.push(char::from_u32(v)?);
                }
            }
            '0'..='7' => {
                let mut oct = String::from(e);
                for _ in 0..2 {
                    oct.push(cs.next()?);
                }
                let v = u32::from_str_radix(&oct, 8).ok()?;
                if v > 255 {
                    return None;
                }
                out.push(char::from_u32(v)?);
            }
            _ => return None,
        }
    }
    Some(out)
}
