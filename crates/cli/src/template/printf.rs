//! Go's `fmt` for templates: `print`, `println` and the verbs of `printf` (`%v %s %q %d %x
//! %X %o %b %c %U %e %f %g %t %T %%`, flags, width and precision), with Go's `%!v(MISSING)`,
//! `%!d(string=x)` and `%!(EXTRA ...)` for what does not fit.

use std::fmt::Write as _;

use super::lex::go_quote;
use super::value::{format_float_e, format_float_g, format_float_v, Value};

/// `fmt.Sprint`: operands printed `%v`, a space between two that are not strings.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        a.write_go(&mut out, false);
    }
    out
}

/// `fmt.Sprintln`: operands printed `%v`, spaces between, a newline after.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        a.write_go(&mut out, false);
    }
    out.push('\n');
    out
}

fn is_str(v: &Value) -> bool {
    matches!(v, Value::Str(_))
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = number_or_star(&mut chars, args, &mut argi, &mut out);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(number_or_star(&mut chars, args, &mut argi, &mut out).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        out.push_str(&format_arg(verb, spec, arg));
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argi..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match a {
                Value::Missing | Value::Null => out.push_str("<nil>"),
                a => {
                    let _ = write!(out, "{}={}", a.type_name(), a.to_go_string());
                }
            }
        }
        out.push(')');
    }
    out
}

fn number_or_star(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    args: &[Value],
    argi: &mut usize,
    out: &mut String,
) -> Option<usize> {
    if chars.peek() == Some(&'*') {
        chars.next();
        let v = args.get(*argi);
        *argi += 1;
        return match v {
            Some(Value::Int(i)) if *i >= 0 => Some(*i as usize),
            _ => {
                out.push_str("%!(BADWIDTH)");
                None
            }
        };
    }
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
    }
    n
}

fn bad(verb: char, arg: &Value) -> String {
    match arg {
        Value::Missing | Value::Null => format!("%!{verb}(<nil>)"),
        a => format!("%!{verb}({}={})", a.type_name(), a.to_go_string()),
    }
}

fn pad(s: String, spec: Spec, numeric: bool) -> String {
    let Some(w) = spec.width else {
        return s;
    };
    let n = s.chars().count();
    if n >= w {
        return s;
    }
    let fill = w - n;
    if spec.minus {
        return s + &" ".repeat(fill);
    }
    if spec.zero && numeric {
        let (sign, digits) = match s.strip_prefix(['-', '+', ' ']) {
            Some(rest) => (&s[..1], rest),
            None => ("", s.as_str()),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    " ".repeat(fill) + &s
}

fn format_arg(verb: char, spec: Spec, arg: &Value) -> String {
    match arg {
        Value::List(items) if verb != 'T' && verb != 'v' => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| {
                    format_arg(
                        verb,
                        Spec {
                            width: spec.width,
                            ..spec
                        },
                        i,
                    )
                })
                .collect();
            return format!("[{}]", parts.join(" "));
        }
        Value::Map(m) if verb != 'T' && verb != 'v' => {
            let parts: Vec<String> = Value::sorted_entries(m)
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        format_arg(verb, spec, &Value::Str(k.clone())),
                        format_arg(verb, spec, v)
                    )
                })
                .collect();
            return format!("map[{}]", parts.join(" "));
        }
        _ => {}
    }
    match verb {
        'T' => pad(arg.type_name().to_string(), spec, false),
        'v' => match arg {
            Value::Int(_) | Value::Uint(_) => format_int(arg, 'd', spec),
            Value::Float(f) => pad(sign(format_float_v(*f), spec), spec, true),
            Value::Str(s) if spec.sharp => pad(go_quote(s), spec, false),
            Value::Missing | Value::Null => pad("<nil>".into(), spec, false),
            a => pad(a.to_go_string(), spec, false),
        },
        's' => match arg {
            Value::Str(s) => pad(truncate(s, spec.prec), spec, false),
            a => bad(verb, a),
        },
        'q' => match arg {
            Value::Str(s) => pad(go_quote(s), spec, false),
            Value::Int(i) => match u32::try_from(*i).ok().and_then(char::from_u32) {
                Some(c) => pad(format!("'{c}'"), spec, false),
                None => bad(verb, arg),
            },
            a => bad(verb, a),
        },
        'd' | 'b' | 'o' | 'O' | 'c' | 'U' => format_int(arg, verb, spec),
        'x' | 'X' => match arg {
            Value::Str(s) => {
                let mut h = String::new();
                for b in s.bytes() {
                    let _ = if verb == 'x' {
                        write!(h, "{b:02x}")
                    } else {
                        write!(h, "{b:02X}")
                    };
                }
                pad(h, spec, false)
            }
            a => format_int(a, verb, spec),
        },
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = match arg {
                Value::Float(f) => *f,
                Value::Int(i) => *i as f64,
                Value::Uint(u) => *u as f64,
                a => return bad(verb, a),
            };
            let s = match verb {
                'e' | 'E' => format_float_e(f, spec.prec.unwrap_or(6), verb == 'E'),
                'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f),
                _ => format_float_g(f, spec.prec, verb == 'G'),
            };
            pad(sign(s, spec), spec, true)
        }
        't' => match arg {
            Value::Bool(b) => pad(b.to_string(), spec, false),
            a => bad(verb, a),
        },
        _ => bad(verb, arg),
    }
}

fn sign(s: String, spec: Spec) -> String {
    if s.starts_with('-') {
        s
    } else if spec.plus {
        format!("+{s}")
    } else if spec.space {
        format!(" {s}")
    } else {
        s
    }
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

fn format_int(arg: &Value, verb: char, spec: Spec) -> String {
    let (neg, mag): (bool, u128) = match arg {
        Value::Int(i) => (*i < 0, i.unsigned_abs() as u128),
        Value::Uint(u) => (false, *u as u128),
        a => return bad(verb, a),
    };
    let body = match verb {
        'c' => {
            return pad(
                char::from_u32(mag as u32).unwrap_or('\u{fffd}').into(),
                spec,
                false,
            )
        }
        'U' => return pad(format!("U+{mag:04X}"), spec, false),
        'b' => format!("{mag:b}"),
        'o' | 'O' => format!("{mag:o}"),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        _ => mag.to_string(),
    };
    let body = match spec.prec {
        Some(p) if body.len() < p => "0".repeat(p - body.len()) + &body,
        _ => body,
    };
    let prefix = match verb {
        'O' => "0o",
        'o' if spec.sharp => "0",
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        'b' if spec.sharp => "0b",
        _ => "",
    };
    let s = if neg {
        format!("-{prefix}{body}")
    } else {
        sign(format!("{prefix}{body}"), spec)
    };
    pad(s, spec, spec.prec.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_as_go() {
        let s = |v: &str| Value::Str(v.into());
        assert_eq!(sprintf("%s-%d", &[s("a"), Value::Int(5)]), "a-5");
        assert_eq!(sprintf("%5s|%-5s|", &[s("ab"), s("cd")]), "   ab|cd   |");
        assert_eq!(
            sprintf(
                "%05d %x %X %o",
                &[
                    Value::Int(-42),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8)
                ]
            ),
            "-0042 ff FF 10"
        );
        assert_eq!(
            sprintf(
                "%.2f %e %g",
                &[
                    Value::Float(1.23456),
                    Value::Float(1234.5),
                    Value::Float(0.5)
                ]
            ),
            "1.23 1.234500e+03 0.5"
        );
        assert_eq!(
            sprintf(
                "%q %v %t",
                &[
                    s("a\"b"),
                    Value::List(vec![s("x"), Value::Int(1)]),
                    Value::Bool(true)
                ]
            ),
            "\"a\\\"b\" [x 1] true"
        );
        assert_eq!(sprintf("%d %s", &[s("x")]), "%!d(string=x) %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("x"), Value::Int(2)]), "x%!(EXTRA int=2)");
        assert_eq!(sprintf("100%%", &[]), "100%");
        assert_eq!(
            sprint(&[s("a"), Value::Int(1), Value::Int(2), s("b")]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[s("a"), Value::Int(1)]), "a 1\n");
    }
}
