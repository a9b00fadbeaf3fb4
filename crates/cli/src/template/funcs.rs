//! The functions a template can call: Go's builtins (`and or not len index slice print printf
//! println html js urlquery eq ne lt le gt ge`) and docker's (`json split join title lower
//! upper pad truncate`), with the header variants docker uses for table headers.

use super::printf::{sprint, sprintf, sprintln};
use super::value::Value;

/// How many arguments a function takes: `fixed`, and more when `variadic`.
pub struct Sig {
    pub fixed: usize,
    pub variadic: bool,
}

/// The signature of a function, `None` when there is no such function.
pub fn signature(name: &str) -> Option<Sig> {
    let (fixed, variadic) = match name {
        "and" | "or" | "index" | "slice" | "printf" | "call" | "eq" => (1, true),
        "print" | "println" | "html" | "js" | "urlquery" => (0, true),
        "not" | "len" | "json" | "title" | "lower" | "upper" => (1, false),
        "ne" | "lt" | "le" | "gt" | "ge" | "split" | "join" | "truncate" => (2, false),
        "pad" => (3, false),
        _ => return None,
    };
    Some(Sig { fixed, variadic })
}

/// Whether `name` is a function templates know.
pub fn exists(name: &str) -> bool {
    signature(name).is_some()
}

/// An error of a call: Go's "wrong type" errors come before the call, the others from it
/// ("error calling X: ...").
pub enum CallError {
    /// The argument (its index) and the error.
    Arg(usize, String),
    Call(String),
}

fn string_arg(v: &Value, i: usize) -> Result<String, CallError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Missing | Value::Null => {
            Err(CallError::Arg(i, "invalid value; expected string".into()))
        }
        other => Err(CallError::Arg(
            i,
            format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            ),
        )),
    }
}

fn int_arg(v: &Value, i: usize) -> Result<i64, CallError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Missing | Value::Null => {
            Err(CallError::Arg(i, "invalid value; expected int".into()))
        }
        other => Err(CallError::Arg(
            i,
            format!(
                "wrong type for value; expected int; got {}",
                other.type_name()
            ),
        )),
    }
}

fn strings_arg(v: &Value, i: usize) -> Result<Vec<String>, CallError> {
    match v {
        Value::Missing | Value::Null => Ok(Vec::new()),
        Value::List(l) => l
            .iter()
            .map(|i| match i {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                CallError::Arg(
                    i,
                    "wrong type for value; expected []string; got []interface {}".into(),
                )
            }),
        other => Err(CallError::Arg(
            i,
            format!(
                "wrong type for value; expected []string; got {}",
                other.type_name()
            ),
        )),
    }
}

/// Calls `name` (not `and`/`or`, which the executor short-circuits). `header`: docker's
/// header functions, which leave the column names as they are.
pub fn call(name: &str, args: &[Value], header: bool) -> Result<Value, CallError> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    if header
        && matches!(
            name,
            "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
        )
    {
        // func(v string, ...) string { return v }
        let s = string_arg(&arg(0), 0)?;
        if name == "truncate" {
            int_arg(&arg(1), 1)?;
        } else if matches!(name, "split" | "join") {
            string_arg(&arg(1), 1)?;
        }
        return Ok(Value::Str(s));
    }
    let call_err = |m: String| CallError::Call(m);
    Ok(match name {
        "not" => Value::Bool(!arg(0).truth()),
        "len" => Value::Int(match arg(0) {
            Value::Str(s) => s.len() as i64,
            Value::List(l) => l.len() as i64,
            Value::Map(m) => m.len() as i64,
            Value::Null => return Err(call_err("len of nil pointer".into())),
            Value::Missing => {
                return Err(call_err(
                    "reflect: call of reflect.Value.Type on zero Value".into(),
                ))
            }
            other => return Err(call_err(format!("len of type {}", other.type_name()))),
        }),
        "index" => index(&arg(0), &args[1.min(args.len())..]).map_err(call_err)?,
        "slice" => slice(&arg(0), &args[1.min(args.len())..]).map_err(call_err)?,
        "print" => Value::Str(sprint(args)),
        "println" => Value::Str(sprintln(args)),
        "printf" => {
            let f = string_arg(&arg(0), 0)?;
            Value::Str(sprintf(&f, &args[1..]))
        }
        "html" => Value::Str(html_escape(&eval_args(args))),
        "js" => Value::Str(js_escape(&eval_args(args))),
        "urlquery" => Value::Str(query_escape(&eval_args(args))),
        "call" => {
            return Err(call_err(format!(
                "non-function of type {}",
                arg(0).type_name()
            )))
        }
        "eq" => {
            if args.len() < 2 {
                return Err(call_err("missing argument for comparison".into()));
            }
            let mut truth = false;
            for b in &args[1..] {
                if eq(&args[0], b).map_err(call_err)? {
                    truth = true;
                    break;
                }
            }
            Value::Bool(truth)
        }
        "ne" => Value::Bool(!eq(&arg(0), &arg(1)).map_err(call_err)?),
        "lt" => Value::Bool(lt(&arg(0), &arg(1)).map_err(call_err)?),
        "le" => Value::Bool(
            lt(&arg(0), &arg(1)).map_err(call_err)? || eq(&arg(0), &arg(1)).map_err(call_err)?,
        ),
        "gt" => Value::Bool(
            !(lt(&arg(0), &arg(1)).map_err(call_err)? || eq(&arg(0), &arg(1)).map_err(call_err)?),
        ),
        "ge" => Value::Bool(!lt(&arg(0), &arg(1)).map_err(call_err)?),
        "json" => Value::Str(arg(0).to_json()),
        "split" => {
            let s = string_arg(&arg(0), 0)?;
            let sep = string_arg(&arg(1), 1)?;
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::Str(c.to_string())).collect()
            } else {
                s.split(sep.as_str()).map(Value::from).collect()
            };
            Value::List(parts)
        }
        "join" => {
            let l = strings_arg(&arg(0), 0)?;
            let sep = string_arg(&arg(1), 1)?;
            Value::Str(l.join(&sep))
        }
        "title" => Value::Str(title(&string_arg(&arg(0), 0)?)),
        "lower" => Value::Str(string_arg(&arg(0), 0)?.to_lowercase()),
        "upper" => Value::Str(string_arg(&arg(0), 0)?.to_uppercase()),
        "pad" => {
            let s = string_arg(&arg(0), 0)?;
            let pre = int_arg(&arg(1), 1)?;
            let post = int_arg(&arg(2), 2)?;
            if s.is_empty() {
                Value::Str(s)
            } else {
                if pre < 0 || post < 0 {
                    return Err(call_err("strings: negative Repeat count".into()));
                }
                Value::Str(format!(
                    "{}{s}{}",
                    " ".repeat(pre as usize),
                    " ".repeat(post as usize)
                ))
            }
        }
        "truncate" => {
            let s = string_arg(&arg(0), 0)?;
            let n = int_arg(&arg(1), 1)?;
            if n < 0 {
                return Err(call_err(format!(
                    "runtime error: slice bounds out of range [:{n}]"
                )));
            }
            let mut n = (n as usize).min(s.len());
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            Value::Str(s[..n].to_string())
        }
        _ => return Err(call_err(format!("{name:?} is not a defined function"))),
    })
}

/// Go's `evalArgs` for html/js/urlquery: one string as is, else `fmt.Sprint`.
fn eval_args(args: &[Value]) -> String {
    match args {
        [Value::Str(s)] => s.clone(),
        _ => sprint(args),
    }
}

/// `strings.Title`: the first letter of each word in title case.
fn title(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let sep = if prev.is_ascii() {
                !(prev.is_ascii_alphanumeric() || prev == '_')
            } else {
                prev.is_whitespace()
            };
            prev = c;
            if sep {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// The zero value of a map's elements, guessed from the other elements (Go's `index` on a
/// missing key gives the zero value of the element type: "" for labels).
fn zero_like(m: &[(String, Value)]) -> Value {
    match m.first().map(|(_, v)| v) {
        None | Some(Value::Str(_)) => Value::Str(String::new()),
        Some(Value::Int(_)) => Value::Int(0),
        Some(Value::Uint(_)) => Value::Uint(0),
        Some(Value::Float(_)) => Value::Float(0.0),
        Some(Value::Bool(_)) => Value::Bool(false),
        Some(Value::List(_)) => Value::List(Vec::new()),
        Some(_) => Value::Null,
    }
}

fn index_int(i: &Value, len: usize) -> Result<usize, String> {
    let x: i128 = match i {
        Value::Int(x) => *x as i128,
        Value::Uint(x) => *x as i128,
        Value::Missing | Value::Null => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ))
        }
    };
    if x < 0 || x > len as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(item: &Value, idx: &[Value]) -> Result<Value, String> {
    if matches!(item, Value::Missing) {
        return Err("index of untyped nil".into());
    }
    let mut cur = item.clone();
    for i in idx {
        cur = match &cur {
            Value::Null => return Err("index of nil pointer".into()),
            Value::List(l) => {
                let x = index_int(i, l.len())?;
                l.get(x)
                    .cloned()
                    .ok_or_else(|| "reflect: slice index out of range".to_string())?
            }
            Value::Str(s) => {
                let x = index_int(i, s.len())?;
                Value::Int(
                    *s.as_bytes()
                        .get(x)
                        .ok_or_else(|| "reflect: string index out of range".to_string())?
                        as i64,
                )
            }
            Value::Map(m) => {
                let key = match i {
                    Value::Str(k) => k,
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        ))
                    }
                };
                match m.iter().find(|(k, _)| k == key) {
                    Some((_, v)) => v.clone(),
                    None => zero_like(m),
                }
            }
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(cur)
}

fn slice(item: &Value, idx: &[Value]) -> Result<Value, String> {
    if matches!(item, Value::Missing | Value::Null) {
        return Err("slice of untyped nil".into());
    }
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match item {
        Value::Str(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0usize, len];
    for (k, i) in idx.iter().take(2).enumerate() {
        bounds[k] = index_int(i, len)?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    Ok(match item {
        Value::Str(s) => Value::Str(
            s.get(bounds[0]..bounds[1])
                .ok_or_else(|| "slice of a string inside a character".to_string())?
                .to_string(),
        ),
        Value::List(l) => Value::List(l[bounds[0]..bounds[1]].to_vec()),
        _ => Value::Missing,
    })
}

enum Basic {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
}

fn basic(v: &Value) -> Option<Basic> {
    Some(match v {
        Value::Bool(b) => Basic::Bool(*b),
        Value::Int(i) => Basic::Int(*i),
        Value::Uint(u) => Basic::Uint(*u),
        Value::Float(f) => Basic::Float(*f),
        Value::Str(s) => Basic::Str(s.clone()),
        _ => return None,
    })
}

const BAD_COMPARISON: &str = "incompatible types for comparison";

/// Go's `eq` of two values (ints and floats compare by value).
fn eq(a: &Value, b: &Value) -> Result<bool, String> {
    let nil = |v: &Value| matches!(v, Value::Missing | Value::Null);
    if nil(a) || nil(b) {
        return Ok(nil(a) && nil(b));
    }
    match (basic(a), basic(b)) {
        (Some(x), Some(y)) => Ok(match (x, y) {
            (Basic::Bool(x), Basic::Bool(y)) => x == y,
            (Basic::Str(x), Basic::Str(y)) => x == y,
            (Basic::Int(x), Basic::Int(y)) => x == y,
            (Basic::Uint(x), Basic::Uint(y)) => x == y,
            (Basic::Int(x), Basic::Uint(y)) | (Basic::Uint(y), Basic::Int(x)) => {
                x >= 0 && x as u64 == y
            }
            (Basic::Float(x), Basic::Float(y)) => x == y,
            (Basic::Float(x), Basic::Int(y)) | (Basic::Int(y), Basic::Float(x)) => x == y as f64,
            (Basic::Float(x), Basic::Uint(y)) | (Basic::Uint(y), Basic::Float(x)) => x == y as f64,
            _ => return Err(BAD_COMPARISON.into()),
        }),
        (None, _) => Err(format!(
            "non-comparable type {}: {}",
            a.to_go_string(),
            a.type_name()
        )),
        (_, None) => Err(format!(
            "non-comparable type {}: {}",
            b.to_go_string(),
            b.type_name()
        )),
    }
}

/// Go's `lt`: numbers and strings only.
fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (Some(x), Some(y)) = (basic(a), basic(b)) else {
        return Err("invalid type for comparison".into());
    };
    Ok(match (x, y) {
        (Basic::Str(x), Basic::Str(y)) => x < y,
        (Basic::Int(x), Basic::Int(y)) => x < y,
        (Basic::Uint(x), Basic::Uint(y)) => x < y,
        (Basic::Int(x), Basic::Uint(y)) => x < 0 || (x as u64) < y,
        (Basic::Uint(x), Basic::Int(y)) => y >= 0 && x < y as u64,
        (Basic::Float(x), Basic::Float(y)) => x < y,
        (Basic::Float(x), Basic::Int(y)) => x < y as f64,
        (Basic::Int(x), Basic::Float(y)) => (x as f64) < y,
        (Basic::Float(x), Basic::Uint(y)) => x < y as f64,
        (Basic::Uint(x), Basic::Float(y)) => (x as f64) < y,
        (Basic::Bool(_), Basic::Bool(_)) => return Err("invalid type for comparison".into()),
        _ => return Err(BAD_COMPARISON.into()),
    })
}

/// `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
