//! The executor: walks the parse tree over a [`Value`] as Go's `text/template` walks its data,
//! with Go's execution errors (`template: :1:2: executing "" at <.X>: ...`).

use super::ast::{Arg, Cmd, Control, List, Node, Pipe};
use super::funcs::{self, CallError};
use super::parse::Tree;
use super::value::Value;
use super::{Missing, Options};

/// Go's `maxExecDepth` is 100000; ours is lower so that recursion stays within the stack.
const MAX_DEPTH: usize = 1000;

enum Flow {
    Normal,
    Break,
    Continue,
}

#[derive(Clone, Copy)]
enum At<'t> {
    None,
    Node(&'t Node),
    Pipe(&'t Pipe),
    Cmd(&'t Cmd),
    Arg(&'t Arg),
}

/// Objects reached through these fields are maps in docker's types, whatever their keys.
const FREE_FORM: &[&str] = &[
    "Labels",
    "Options",
    "DriverOpts",
    "Data",
    "Status",
    "Annotations",
    "Sysctls",
    "StorageOpt",
    "Tmpfs",
    "ExposedPorts",
    "Volumes",
    "Ports",
    "Networks",
];

pub struct State<'t, 'o> {
    tree: &'t Tree,
    name: &'t str,
    text: &'t str,
    opts: &'o Options<'o>,
    vars: Vec<(String, Value)>,
    out: String,
    at: At<'t>,
    depth: usize,
}

type R<T> = Result<T, String>;

/// Runs `tree` (parsed from `text`) on `data`.
pub fn execute(tree: &Tree, name: &str, text: &str, data: &Value, opts: &Options<'_>) -> R<String> {
    let mut s = State {
        tree,
        name,
        text,
        opts,
        vars: vec![("$".into(), data.clone())],
        out: String::new(),
        at: At::None,
        depth: 0,
    };
    s.walk_list(data, &tree.root)?;
    Ok(s.out)
}

/// Executes and keeps what was written before an error (docker's table headers).
pub fn execute_partial(
    tree: &Tree,
    name: &str,
    text: &str,
    data: &Value,
    opts: &Options<'_>,
) -> String {
    let mut s = State {
        tree,
        name,
        text,
        opts,
        vars: vec![("$".into(), data.clone())],
        out: String::new(),
        at: At::None,
        depth: 0,
    };
    let _ = s.walk_list(data, &tree.root);
    s.out
}

fn pos_of(at: At<'_>) -> Option<(usize, String)> {
    match at {
        At::None => None,
        At::Node(n) => Some((
            match n {
                Node::Text(_) => 0,
                Node::Action(p) => p.pos,
                Node::If(c) | Node::Range(c) | Node::With(c) => c.pos,
                Node::Template { pos, .. } | Node::Break(pos) | Node::Continue(pos) => *pos,
            },
            n.to_string(),
        )),
        At::Pipe(p) => Some((p.pos, p.to_string())),
        At::Cmd(c) => Some((c.pos, c.to_string())),
        At::Arg(a) => Some((a.pos(), a.to_string())),
    }
}

impl<'t> State<'t, '_> {
    fn errorf<T>(&self, msg: impl Into<String>) -> R<T> {
        let msg = msg.into();
        match pos_of(self.at) {
            None => Err(format!("template: {}: {msg}", self.name)),
            Some((pos, ctx)) => {
                let before = self.text.get(..pos).unwrap_or("");
                let line = 1 + before.matches('\n').count();
                let col = match before.rfind('\n') {
                    Some(nl) => pos - (nl + 1),
                    None => pos,
                };
                Err(format!(
                    "template: {name}:{line}:{col}: executing \"{name}\" at <{ctx}>: {msg}",
                    name = self.name
                ))
            }
        }
    }

    fn walk_list(&mut self, dot: &Value, list: &'t List) -> R<Flow> {
        for n in list {
            match self.walk(dot, n)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &'t Node) -> R<Flow> {
        self.at = At::Node(node);
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Action(p) => {
                let v = self.eval_pipeline(dot, p)?;
                if p.decl.is_empty() {
                    v.write_go(&mut self.out, true);
                }
            }
            Node::If(c) | Node::With(c) => {
                let mark = self.vars.len();
                let r = self.walk_if_with(dot, c, matches!(node, Node::With(_)));
                self.vars.truncate(mark);
                return r;
            }
            Node::Range(c) => {
                let mark = self.vars.len();
                let r = self.walk_range(dot, c);
                self.vars.truncate(mark);
                return r;
            }
            Node::Template { name, pipe, .. } => {
                let Some(list) = self.tree.defs.get(name) else {
                    return self.errorf(format!("no such template {name:?}"));
                };
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Missing,
                };
                if self.depth >= MAX_DEPTH {
                    return self.errorf(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                }
                let saved = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
                self.depth += 1;
                let r = self.walk_list(&new_dot, list);
                self.depth -= 1;
                self.vars = saved;
                r?;
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(&mut self, dot: &Value, c: &'t Control, with: bool) -> R<Flow> {
        let v = self.eval_pipeline(dot, &c.pipe)?;
        if v.truth() {
            if with {
                self.walk_list(&v, &c.list)
            } else {
                self.walk_list(dot, &c.list)
            }
        } else if let Some(e) = &c.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(Flow::Normal)
        }
    }

    fn walk_range(&mut self, dot: &Value, c: &'t Control) -> R<Flow> {
        let v = self.eval_pipeline(dot, &c.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Map(m) => Value::sorted_entries(m)
                .into_iter()
                .map(|(k, e)| (Value::Str(k.clone()), e.clone()))
                .collect(),
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Missing | Value::Null => Vec::new(),
            other => {
                return self.errorf(format!("range can't iterate over {}", other.to_go_string()))
            }
        };
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                return self.walk_list(dot, e);
            }
            return Ok(Flow::Normal);
        }
        for (index, elem) in items {
            let d = &c.pipe.decl;
            if d.len() == 1 {
                self.set_var(&d[0], elem.clone(), c.pipe.is_assign, mark, 1);
            } else if d.len() == 2 {
                self.set_var(&d[0], index, c.pipe.is_assign, mark, 2);
                self.set_var(&d[1], elem.clone(), c.pipe.is_assign, mark, 1);
            }
            let flow = self.walk_list(&elem, &c.list);
            self.vars.truncate(mark);
            match flow? {
                Flow::Break => break,
                Flow::Normal | Flow::Continue => {}
            }
        }
        Ok(Flow::Normal)
    }

    /// In a range, a declared variable is the top one (`:=`, pushed once by the pipeline) or
    /// an existing one (`=`).
    fn set_var(&mut self, name: &str, v: Value, assign: bool, mark: usize, from_top: usize) {
        if assign {
            if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
            }
        } else if let Some(slot) = mark
            .checked_sub(from_top)
            .and_then(|i| self.vars.get_mut(i))
        {
            slot.1 = v;
        }
    }

    fn var_value(&self, name: &str) -> R<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.errorf(format!("undefined variable: {name}")),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'t Pipe) -> R<Value> {
        self.at = At::Pipe(pipe);
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(dot, cmd, value.take())?;
            // a nil inside an interface is no value (Go's "lovely!")
            value = Some(if v == Value::Null { Value::Missing } else { v });
        }
        let value = value.unwrap_or_default();
        for name in &pipe.decl {
            if pipe.is_assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = value.clone();
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return self.errorf(format!(
                "can't give argument to non-function {}",
                args.first().map(ToString::to_string).unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Cmd, fin: Option<Value>) -> R<Value> {
        let Some(first) = cmd.args.first() else {
            return Ok(Value::Missing);
        };
        match first {
            Arg::Field { idents, .. } => {
                self.at = At::Arg(first);
                return self.eval_field_chain(dot, dot.clone(), first, idents, &cmd.args, fin);
            }
            Arg::Chain { node, fields, .. } => {
                self.at = At::Arg(first);
                let recv = self.eval_arg(dot, node)?;
                return self.eval_field_chain(dot, recv, first, fields, &cmd.args, fin);
            }
            Arg::Var { name, fields, .. } => {
                self.at = At::Arg(first);
                let v = self.var_value(name)?;
                if fields.is_empty() {
                    self.not_a_function(&cmd.args, &fin)?;
                    return Ok(v);
                }
                return self.eval_field_chain(dot, v, first, fields, &cmd.args, fin);
            }
            Arg::Ident { name, .. } => {
                self.at = At::Arg(first);
                return self.eval_function(dot, name, first, At::Cmd(cmd), &cmd.args[1..], fin);
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                return self.eval_pipeline(dot, p);
            }
            _ => {}
        }
        self.at = At::Arg(first);
        self.not_a_function(&cmd.args, &fin)?;
        self.constant(dot, first)
    }

    fn constant(&self, dot: &Value, a: &Arg) -> R<Value> {
        match a {
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => self.errorf("nil is not a command"),
            Arg::Number { value, text, .. } => match value {
                Value::Uint(_) => self.errorf(format!("{text} overflows int")),
                v => Ok(v.clone()),
            },
            Arg::Str { value, .. } => Ok(Value::Str(value.clone())),
            other => self.errorf(format!("can't evaluate command {:?}", other.to_string())),
        }
    }

    /// An argument of a function or method.
    fn eval_arg(&mut self, dot: &Value, a: &'t Arg) -> R<Value> {
        self.at = At::Arg(a);
        match a {
            Arg::Field { idents, .. } => {
                self.eval_field_chain(dot, dot.clone(), a, idents, std::slice::from_ref(a), None)
            }
            Arg::Var { name, fields, .. } => {
                let v = self.var_value(name)?;
                if fields.is_empty() {
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, a, fields, std::slice::from_ref(a), None)
            }
            Arg::Chain { node, fields, .. } => {
                let recv = self.eval_arg(dot, node)?;
                self.at = At::Arg(a);
                self.eval_field_chain(dot, recv, a, fields, std::slice::from_ref(a), None)
            }
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Ident { name, .. } => self.eval_function(dot, name, a, At::Arg(a), &[], None),
            Arg::Nil(_) => Ok(Value::Null),
            other => self.constant(dot, other),
        }
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        node: &'t Arg,
        idents: &[String],
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let n = idents.len();
        let mut parent: Option<&str> = None;
        for (i, name) in idents.iter().enumerate() {
            let last = i + 1 == n;
            let (a, f): (&'t [Arg], Option<Value>) = if last {
                (args, fin.clone())
            } else {
                (&[], None)
            };
            recv = self.eval_field(dot, name, node, a, f, recv, parent)?;
            parent = Some(name);
        }
        Ok(recv)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
        recv: Value,
        parent: Option<&str>,
    ) -> R<Value> {
        match recv {
            Value::Missing => {
                if self.opts.missing == Missing::Error {
                    return self.errorf(format!("nil data; no entry for key {name:?}"));
                }
                return Ok(Value::Missing);
            }
            Value::Null => {
                return self.errorf(format!("nil pointer evaluating interface {{}}.{name}"));
            }
            _ => {}
        }
        let has_args = args.len() > 1 || fin.is_some();
        if let (Some(method), Value::Map(_)) = (self.opts.method, &recv) {
            if method.has(name) {
                let mut vals = Vec::new();
                for a in args.iter().skip(1) {
                    vals.push(self.eval_arg(dot, a)?);
                }
                if let Some(f) = fin {
                    vals.push(f);
                }
                self.at = At::Arg(node);
                return match method.call(name, &vals) {
                    Ok(v) => Ok(v),
                    Err(e) => self.errorf(e),
                };
            }
        }
        let Value::Map(m) = &recv else {
            return self.errorf(format!(
                "can't evaluate field {name} in type {}",
                recv.type_name()
            ));
        };
        if has_args {
            return self.errorf(format!("{name} is not a method but has arguments"));
        }
        if let Some((_, v)) = m.iter().find(|(k, _)| k == name) {
            return Ok(v.clone());
        }
        if self.opts.missing == Missing::Typed {
            let mut same = m.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
            if let (Some((_, v)), None) = (same.next(), same.next()) {
                return Ok(v.clone());
            }
        }
        let error = match self.opts.missing {
            Missing::NoValue => false,
            Missing::Error => true,
            Missing::Struct(ty) => {
                return self.errorf(format!("can't evaluate field {name} in type {ty}"));
            }
            Missing::Typed => {
                let free = parent.is_some_and(|p| FREE_FORM.contains(&p));
                !free
                    && !m.is_empty()
                    && m.iter()
                        .all(|(k, _)| k.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            }
        };
        if error {
            return self.errorf(format!("map has no entry for key {name:?}"));
        }
        Ok(Value::Missing)
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        ident: &'t Arg,
        cmd: At<'t>,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        self.at = At::Arg(ident);
        let Some(sig) = funcs::signature(name) else {
            return self.errorf(format!("{name:?} is not a defined function"));
        };
        let num_in = args.len() + usize::from(fin.is_some());
        if sig.variadic {
            if num_in < sig.fixed {
                return self.errorf(format!(
                    "wrong number of args for {name}: want at least {} got {}",
                    sig.fixed,
                    args.len()
                ));
            }
        } else if num_in != sig.fixed {
            return self.errorf(format!(
                "wrong number of args for {name}: want {} got {num_in}",
                sig.fixed
            ));
        }
        if name == "and" || name == "or" {
            let mut v = Value::Missing;
            let all: Vec<Option<&'t Arg>> = args
                .iter()
                .map(Some)
                .chain(fin.iter().map(|_| None))
                .collect();
            for a in all {
                v = match a {
                    Some(a) => self.eval_arg(dot, a)?,
                    None => fin.clone().unwrap_or_default(),
                };
                if v.truth() != (name == "and") {
                    return Ok(v);
                }
            }
            return Ok(v);
        }
        let mut vals = Vec::with_capacity(num_in);
        for a in args {
            vals.push(self.eval_arg(dot, a)?);
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        self.at = At::Arg(ident);
        match funcs::call(name, &vals, self.opts.header) {
            Ok(v) => Ok(v),
            Err(CallError::Arg(i, m)) => {
                if let Some(a) = args.get(i) {
                    self.at = At::Arg(a);
                }
                let m = match self.opts.missing {
                    // docker's raw inspect data decodes numbers as json.Number
                    Missing::Typed => ["int", "uint64", "float64"].iter().fold(m, |m, t| {
                        m.replace(&format!("; got {t}"), "; got json.Number")
                    }),
                    _ => m,
                };
                self.errorf(m)
            }
            Err(CallError::Call(m)) => {
                self.at = cmd;
                self.errorf(format!("error calling {name}: {m}"))
            }
        }
    }
}
