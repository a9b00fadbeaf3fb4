//! The data a template runs over: JSON as the docker CLI sees it, with the order of object
//! keys kept as they came (Go encodes structs in field order), and Go's ways of printing it
//! (`fmt.Sprint`, `encoding/json`).

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A value in a template.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value at all (Go's invalid `reflect.Value`): a key missing from a map.
    #[default]
    Missing,
    /// JSON `null`.
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// An object, its keys in the order they came.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// Go's type name of the value, as its errors and `%T` print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Missing | Value::Null => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    /// Go's `isTrue`: the zero value, nil and empty things are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Missing | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// Map entries sorted by key, as Go prints and ranges over maps.
    pub fn sorted_entries(m: &[(String, Value)]) -> Vec<&(String, Value)> {
        let mut v: Vec<&(String, Value)> = m.iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// `fmt.Sprint(v)` of one value (`%v`).
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        self.write_go(&mut out, true);
        out
    }

    /// As `fmt` prints the value; `top` is false inside a list or map, where nil is `<nil>`.
    pub fn write_go(&self, out: &mut String, top: bool) {
        match self {
            Value::Missing => out.push_str(if top { "<no value>" } else { "<nil>" }),
            Value::Null => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Float(f) => out.push_str(&format_float_v(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_go(out, false);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in Value::sorted_entries(m).into_iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out, false);
                }
                out.push(']');
            }
        }
    }

    /// Go's `json.Encoder` with HTML escaping off, as docker's `json` function.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Missing | Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Float(f) => out.push_str(&format_float_json(*f)),
            Value::Str(s) => json_string(out, s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(out, k);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// A JSON string as Go's encoder writes it without HTML escaping.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The shortest decimal digits that read back as `f` (finite, not zero) and the position of
/// the decimal point: `f = 0.DIGITS × 10^dp`.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), exp + 1)
}

/// `%e` of the digits with `prec` digits after the point (digits padded with zeros).
fn fmt_e(neg: bool, digits: &str, dp: i32, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let mut ds = digits.chars();
    out.push(ds.next().unwrap_or('0'));
    if prec > 0 {
        out.push('.');
        let rest: String = ds.collect();
        out.push_str(&rest);
        for _ in rest.len()..prec {
            out.push('0');
        }
    }
    let exp = if digits == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
    out
}

/// `%f` of the digits, all of them after the point.
fn fmt_f(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let nd = digits.len() as i32;
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..-dp {
            out.push('0');
        }
        out.push_str(digits);
    } else if dp >= nd {
        out.push_str(digits);
        for _ in nd..dp {
            out.push('0');
        }
    } else {
        let (a, b) = digits.split_at(dp as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    }
    out
}

fn special(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else if f == 0.0 {
        Some(if f.is_sign_negative() { "-0" } else { "0" }.into())
    } else {
        None
    }
}

/// `fmt.Sprint` of a float64 (`%v`: strconv's shortest `'g'`, an exponent from 10^6 up and
/// below 10^-4).
pub fn format_float_v(f: f64) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let (digits, dp) = shortest_digits(f);
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        fmt_e(f < 0.0, &digits, dp, digits.len() - 1, false)
    } else {
        fmt_f(f < 0.0, &digits, dp)
    }
}

/// `encoding/json`'s float64: plain decimals between 1e-6 and 1e21, else `1e+21`, `1e-7`.
pub fn format_float_json(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, dp) = shortest_digits(f);
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        let s = fmt_e(f < 0.0, &digits, dp, digits.len() - 1, false);
        // e-07 -> e-7
        match s.rsplit_once("e-0") {
            Some((a, b)) if b.len() == 1 => format!("{a}e-{b}"),
            _ => s,
        }
    } else {
        fmt_f(f < 0.0, &digits, dp)
    }
}

/// `%e` with a precision.
pub fn format_float_e(f: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special(f) {
        return if f == 0.0 {
            fmt_e(f.is_sign_negative(), "0", 1, prec, upper)
        } else {
            s
        };
    }
    let s = format!("{:.prec$e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    fmt_e(f < 0.0, &digits, exp + 1, prec, upper)
}

/// `%g` with a precision (`None`: shortest).
pub fn format_float_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let (digits, dp, eprec) = match prec {
        None => {
            let (d, dp) = shortest_digits(f);
            (d, dp, 6)
        }
        Some(p) => {
            let p = p.max(1);
            let s = format!("{:.*e}", p - 1, f.abs());
            let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
            let exp: i32 = exp.parse().unwrap_or(0);
            let d: String = mant.chars().filter(char::is_ascii_digit).collect();
            let d = d.trim_end_matches('0').to_string();
            let d = if d.is_empty() { "0".to_string() } else { d };
            let nd = d.len() as i32;
            let mut eprec = p as i32;
            if eprec > nd && nd > exp {
                eprec = nd;
            }
            (d, exp + 1, eprec)
        }
    };
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        fmt_e(f < 0.0, &digits, dp, digits.len() - 1, upper)
    } else {
        fmt_f(f < 0.0, &digits, dp)
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Uint(u)
                } else {
                    Value::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.iter().map(|(k, v)| (k.clone(), Value::from(v))).collect())
            }
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        Value::from(&v)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::Uint(u), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::Str(s.to_string()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::Str(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out: Vec<(String, Value)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            match out.iter_mut().find(|(ok, _)| *ok == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        Ok(Value::Map(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go() {
        assert_eq!(format_float_v(1.7e9), "1.7e+09");
        assert_eq!(format_float_v(123456.0), "123456");
        assert_eq!(format_float_v(1234567.0), "1.234567e+06");
        assert_eq!(format_float_v(0.5), "0.5");
        assert_eq!(format_float_v(0.00001), "1e-05");
        assert_eq!(format_float_v(-2.25), "-2.25");
        assert_eq!(format_float_json(1.7e9), "1700000000");
        assert_eq!(format_float_json(1e21), "1e+21");
        assert_eq!(format_float_json(1e-7), "1e-7");
        assert_eq!(format_float_e(1234.5678, 2, false), "1.23e+03");
        assert_eq!(format_float_g(1234.5678, Some(3), false), "1.23e+03");
        assert_eq!(format_float_g(0.000012345, None, false), "1.2345e-05");
        assert_eq!(format_float_g(100.0, Some(3), false), "100");
    }

    #[test]
    fn values_print_as_go() {
        let v: Value = serde_json::from_str(r#"{"b":[1,"x",null],"a":{"z":true,"y":1.5}}"#)
            .unwrap_or_default();
        assert_eq!(v.to_go_string(), "map[a:map[y:1.5 z:true] b:[1 x <nil>]]");
        assert_eq!(v.to_json(), r#"{"b":[1,"x",null],"a":{"z":true,"y":1.5}}"#);
        assert_eq!(Value::from("a<b>&\u{1}").to_json(), r#""a<b>&\u0001""#);
    }
}
