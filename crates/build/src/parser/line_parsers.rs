//! Splitting one logical line into keyword, `--flags` and arguments, and the
//! per-instruction argument forms of BuildKit's `line_parsers.go`.

use super::ParseErrorKind;

/// Whitespace that separates the keyword, and `FROM`/`EXPOSE` arguments:
/// Go's `[\t\v\f\r ]+`.
fn is_token_space(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Arguments of one instruction as the line parser sees them.
#[derive(Debug, Default)]
pub(super) struct Args {
    pub(super) args: Vec<String>,
    pub(super) json: bool,
}

/// `keyword [--flag...] rest` → (keyword as written, flags, rest).
pub(super) fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let line = line.trim();
    match line.split_once(is_token_space) {
        None => (line.to_string(), Vec::new(), String::new()),
        Some((cmd, rest)) => {
            let (args, flags) =
                extract_builder_flags(rest.trim_start_matches(is_token_space), escape);
            (cmd.to_string(), flags, args.trim().to_string())
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Leading words that start with `--` are flags, one word each (`--name=value`,
/// or a bare `--name` for a boolean); the rest of the line is returned
/// untouched. Quotes and escapes inside flags are removed.
fn extract_builder_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words: Vec<String> = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut i = 0;
    loop {
        let cur = chars.get(i).copied();
        if phase == Phase::Spaces {
            let Some((pos, ch)) = cur else { break };
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            let next_is_dash = chars.get(i + 1).map(|&(_, c)| c) == Some('-');
            if ch != '-' || !next_is_dash {
                return (line.get(pos..).unwrap_or_default(), words);
            }
            phase = Phase::Word;
        }
        let Some((pos, ch)) = cur else {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line.get(pos..).unwrap_or_default(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                i += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                i += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                match chars.get(i + 1) {
                    None => {
                        i += 1;
                        continue;
                    }
                    Some(&(_, n)) => {
                        i += 1;
                        c = n;
                    }
                }
            }
            word.push(c);
            i += 1;
            continue;
        }
        // In a quote.
        if ch == quote {
            phase = Phase::Word;
            i += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            match chars.get(i + 1) {
                None => {
                    phase = Phase::Word;
                    i += 1;
                    continue;
                }
                Some(&(_, n)) => {
                    i += 1;
                    c = n;
                }
            }
        }
        word.push(c);
        i += 1;
    }
    ("", words)
}

/// Words separated by whitespace; quotes and escapes are kept in the words
/// (they are removed later by variable expansion).
pub(super) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut i = 0;
    loop {
        let cur = chars.get(i).copied();
        if phase == Phase::Spaces {
            let Some(ch) = cur else { break };
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            phase = Phase::Word;
        }
        let Some(mut ch) = cur else {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                i += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                let Some(&n) = chars.get(i + 1) else {
                    i += 1;
                    continue; // an escape at the end of the line is dropped
                };
                // Unquoted: keep the escape and the next char, even a quote.
                word.push(ch);
                i += 1;
                ch = n;
            }
            word.push(ch);
            i += 1;
            continue;
        }
        // In a quote: the escape is special except in single quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            let Some(&n) = chars.get(i + 1) else {
                phase = Phase::Word;
                i += 1;
                continue;
            };
            word.push(ch);
            i += 1;
            ch = n;
        }
        word.push(ch);
        i += 1;
    }
    words
}

/// Dispatches on the lower-cased keyword.
pub(super) fn parse_args(cmd: &str, rest: &str, escape: char) -> Result<Args, ParseErrorKind> {
    match cmd {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(rest),
        "arg" => Ok(Args {
            args: parse_words(rest, escape),
            ..Args::default()
        }),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(rest),
        "env" => parse_name_val(rest, "ENV", escape),
        "label" => parse_name_val(rest, "LABEL", escape),
        "expose" | "from" => Ok(Args {
            args: whitespace_delimited(rest),
            ..Args::default()
        }),
        "healthcheck" => parse_health_config(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" => Ok(Args {
            args: if rest.is_empty() {
                Vec::new()
            } else {
                vec![rest.to_string()]
            },
            ..Args::default()
        }),
        // ONBUILD's trigger is parsed by the caller (it needs a whole node).
        _ => Ok(Args::default()),
    }
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_token_space)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// ENV and LABEL: `key value` (old form) or `k=v k2="v 2"`. Each pair gives
/// three args: key, value, and `=` (or empty for the old form).
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Args, ParseErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Args::default());
    };
    let mut args = Vec::new();
    if !first.contains('=') {
        let Some((name, value)) = rest.split_once(is_token_space) else {
            return Err(ParseErrorKind::TwoArguments(key.to_string()));
        };
        let value = value.trim_start_matches(is_token_space);
        args.extend([name.to_string(), value.to_string(), String::new()]);
        return Ok(Args {
            args,
            ..Args::default()
        });
    }
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ParseErrorKind::MissingEquals(word.clone()));
        };
        args.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(Args {
        args,
        ..Args::default()
    })
}

enum JsonOutcome {
    Strings(Vec<String>),
    NotJson,
}

/// JSON form only for a JSON array of strings; an array holding anything else
/// is an error; any other text is not JSON.
fn parse_json(rest: &str) -> Result<JsonOutcome, ParseErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(JsonOutcome::NotJson);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest)
    else {
        return Ok(JsonOutcome::NotJson);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => out.push(s),
            _ => return Err(ParseErrorKind::JsonNotStrings),
        }
    }
    Ok(JsonOutcome::Strings(out))
}

fn parse_maybe_json(rest: &str) -> Result<Args, ParseErrorKind> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    Ok(match parse_json(rest)? {
        JsonOutcome::Strings(args) => Args { args, json: true },
        JsonOutcome::NotJson => Args {
            args: vec![rest.to_string()],
            ..Args::default()
        },
    })
}

fn parse_maybe_json_to_list(rest: &str) -> Result<Args, ParseErrorKind> {
    Ok(match parse_json(rest)? {
        JsonOutcome::Strings(args) => Args { args, json: true },
        JsonOutcome::NotJson => Args {
            args: whitespace_delimited(rest),
            ..Args::default()
        },
    })
}

/// `HEALTHCHECK TYPE rest`: the type, then `rest` as for CMD.
fn parse_health_config(rest: &str) -> Result<Args, ParseErrorKind> {
    let (typ, cmd) = match rest.split_once(char::is_whitespace) {
        Some((t, c)) => (t, c.trim_start()),
        None => (rest, ""),
    };
    if typ.is_empty() {
        return Ok(Args::default());
    }
    let mut parsed = parse_maybe_json(cmd)?;
    parsed.args.insert(0, typ.to_string());
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(line: &str) -> (String, Vec<String>) {
        let (rest, f) = extract_builder_flags(line, '\\');
        (rest.to_string(), f)
    }

    #[test]
    fn flags_before_arguments() {
        assert_eq!(
            flags("--from=x --chown=a:b src dst"),
            (
                "src dst".into(),
                vec!["--from=x".into(), "--chown=a:b".into()]
            )
        );
        assert_eq!(flags("src --from=x"), ("src --from=x".into(), vec![]));
        assert_eq!(flags("--link"), (String::new(), vec!["--link".into()]));
        // A bare flag is a boolean: the next word is an argument, not its value
        // (`COPY --link src dst`, `COPY --parents a/b/c.txt /dst/`).
        assert_eq!(
            flags("--link src dst"),
            ("src dst".into(), vec!["--link".into()])
        );
        assert_eq!(
            flags("--parents --chown=1:2 a/b dst/"),
            (
                "a/b dst/".into(),
                vec!["--parents".into(), "--chown=1:2".into()]
            )
        );
        assert_eq!(flags("-x --y"), ("-x --y".into(), vec![]));
    }

    #[test]
    fn flag_quotes_and_escapes_removed() {
        assert_eq!(
            flags("--mount=\"type=cache,target=/a b\" echo"),
            ("echo".into(), vec!["--mount=type=cache,target=/a b".into()])
        );
        assert_eq!(flags("--a=x\\ y z"), ("z".into(), vec!["--a=x y".into()]));
        assert_eq!(flags("--a='' z"), ("z".into(), vec!["--a=".into()]));
    }

    #[test]
    fn double_dash_ends_flags() {
        assert_eq!(
            flags("--a=1 -- --b=2"),
            (" --b=2".into(), vec!["--a=1".into()])
        );
    }

    #[test]
    fn a_flag_never_takes_the_next_word() {
        // `RUN --network none echo` runs `none echo` with a flag that wants a
        // value: the flag's own parser says so.
        assert_eq!(
            flags("--network none echo hi"),
            ("none echo hi".into(), vec!["--network".into()])
        );
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words("a \"b c\" 'd e'", '\\'),
            ["a", "\"b c\"", "'d e'"]
        );
        assert_eq!(parse_words("a\\ b c", '\\'), ["a\\ b", "c"]);
        assert_eq!(parse_words("k=\"a \\\" b\"", '\\'), ["k=\"a \\\" b\""]);
        assert_eq!(parse_words("'a\\' b", '\\'), ["'a\\'", "b"]);
        assert_eq!(parse_words("x\\", '\\'), ["x"]);
        assert_eq!(parse_words("\"\"", '\\'), ["\"\""]);
        assert_eq!(parse_words("  ", '\\'), Vec::<String>::new());
    }

    #[test]
    fn name_val_forms() {
        let a = parse_name_val("k v w", "ENV", '\\').unwrap().args;
        assert_eq!(a, ["k", "v w", ""]);
        let a = parse_name_val("a=1 b=\"2 3\"", "ENV", '\\').unwrap().args;
        assert_eq!(a, ["a", "1", "=", "b", "\"2 3\"", "="]);
        assert_eq!(
            parse_name_val("k", "ENV", '\\').unwrap_err(),
            ParseErrorKind::TwoArguments("ENV".into())
        );
        assert_eq!(
            parse_name_val("a=1 b", "LABEL", '\\').unwrap_err(),
            ParseErrorKind::MissingEquals("b".into())
        );
    }

    #[test]
    fn json_or_shell() {
        let a = parse_maybe_json("[\"a\", \"b\"]").unwrap();
        assert!(a.json);
        assert_eq!(a.args, ["a", "b"]);
        let a = parse_maybe_json("[\"a\", \"b\"").unwrap();
        assert!(!a.json);
        assert_eq!(a.args, ["[\"a\", \"b\""]);
        let a = parse_maybe_json("['a']").unwrap();
        assert!(!a.json);
        assert_eq!(
            parse_maybe_json("[1]").unwrap_err(),
            ParseErrorKind::JsonNotStrings
        );
        let a = parse_maybe_json_to_list("a  b").unwrap();
        assert_eq!(a.args, ["a", "b"]);
        let a = parse_maybe_json("[]").unwrap();
        assert!(a.json && a.args.is_empty());
    }

    #[test]
    fn healthcheck_type_then_command() {
        let a = parse_health_config("CMD [\"curl\", \"x\"]").unwrap();
        assert!(a.json);
        assert_eq!(a.args, ["CMD", "curl", "x"]);
        let a = parse_health_config("NONE").unwrap();
        assert_eq!(a.args, ["NONE"]);
        let a = parse_health_config("CMD curl -f x").unwrap();
        assert_eq!(a.args, ["CMD", "curl -f x"]);
    }

    #[test]
    fn keyword_split() {
        let (c, f, a) = split_command("  run --network=none  echo hi  ", '\\');
        assert_eq!(
            (c.as_str(), f, a.as_str()),
            ("run", vec!["--network=none".to_string()], "echo hi")
        );
        let (c, f, a) = split_command("FROM", '\\');
        assert_eq!((c.as_str(), f.len(), a.as_str()), ("FROM", 0, ""));
    }
}
