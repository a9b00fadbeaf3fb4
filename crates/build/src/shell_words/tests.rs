use super::*;

fn env() -> Vec<(String, String)> {
    env_from_strings([
        "PWD=/home",
        "SHELL=bash",
        "KOREAN=한국어",
        "NULL=",
        "SPACED=a  b",
    ])
}

fn word(w: &str) -> Result<String, ExpandError> {
    Lex::new('\\').process_word(w, &env())
}

fn ok(w: &str) -> String {
    word(w).unwrap_or_else(|e| panic!("{w:?}: {e}"))
}

fn words(w: &str) -> Vec<String> {
    Lex::new('\\').process_words(w, &env()).unwrap()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn plain_and_quotes() {
    assert_eq!(ok("hello"), "hello");
    assert_eq!(ok("he'll'o"), "hello");
    assert_eq!(ok("he\"ll\"o"), "hello");
    assert_eq!(ok("'abc'"), "abc");
    assert_eq!(ok("'a\\b'"), "a\\b");
    assert_eq!(ok("'abc\\'"), "abc\\");
    assert_eq!(ok("'$PWD'"), "$PWD");
    assert_eq!(ok("\"$PWD\""), "/home");
    assert_eq!(ok("\"'$PWD'\""), "'/home'");
    assert_eq!(ok("'\"$PWD\"'"), "\"$PWD\"");
}

#[test]
fn unterminated_quotes_fail() {
    assert_eq!(
        word("he'llo").unwrap_err().failure(),
        &ExpandFailure::UnterminatedSingleQuote
    );
    assert_eq!(
        word("he\"llo").unwrap_err().failure(),
        &ExpandFailure::UnterminatedDoubleQuote
    );
    assert!(word("he\\\\'llo").is_err());
}

#[test]
fn error_text_names_the_word() {
    let e = word("${PWD").unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to process \"${PWD\": syntax error: missing '}'"
    );
}

#[test]
fn escapes_outside_quotes() {
    assert_eq!(ok("he\\'llo"), "he'llo");
    assert_eq!(ok("abc\\"), "abc");
    assert_eq!(ok("abc\\\\"), "abc\\");
    assert_eq!(ok("\\$PWD"), "$PWD");
    assert_eq!(ok("\\a\\b"), "ab");
}

#[test]
fn escapes_inside_double_quotes() {
    assert_eq!(ok("\"a\\\"b\""), "a\"b");
    assert_eq!(ok("\"a\\\\b\""), "a\\b");
    assert_eq!(ok("\"a\\b\""), "a\\b");
    assert_eq!(ok("\"\\$PWD\""), "$PWD");
}

#[test]
fn backtick_escape() {
    let lex = Lex::new('`');
    assert_eq!(lex.process_word("a`$PWD", &env()).unwrap(), "a$PWD");
    assert_eq!(lex.process_word("c:\\dir", &env()).unwrap(), "c:\\dir");
    assert_eq!(lex.process_word("\"a`\"b\"", &env()).unwrap(), "a\"b");
}

#[test]
fn simple_variables() {
    assert_eq!(ok("$PWD"), "/home");
    assert_eq!(ok("${PWD}"), "/home");
    assert_eq!(ok("x${PWD}y"), "x/homey");
    assert_eq!(ok("$PWD_"), "");
    assert_eq!(ok("${PWD}_"), "/home_");
    assert_eq!(ok("$PWD/x"), "/home/x");
    assert_eq!(ok("${KOREAN}"), "한국어");
    assert_eq!(ok("$UNSET"), "");
    assert_eq!(ok("${UNSET}"), "");
}

#[test]
fn lone_dollar_and_specials() {
    assert_eq!(ok("$"), "$");
    assert_eq!(ok("$ a"), "$ a");
    assert_eq!(ok("a$"), "a$");
    assert_eq!(ok("$1"), "");
    assert_eq!(ok("$12x"), "x");
    assert_eq!(ok("$@"), "");
    assert_eq!(ok("${1}"), "");
    assert_eq!(ok("$-x"), "x");
}

#[test]
fn syntax_errors() {
    assert_eq!(
        word("${").unwrap_err().failure(),
        &ExpandFailure::MissingBrace
    );
    assert_eq!(
        word("${}").unwrap_err().failure(),
        &ExpandFailure::BadSubstitution
    );
    assert_eq!(
        word("${:}").unwrap_err().failure(),
        &ExpandFailure::BadSubstitution
    );
    assert_eq!(
        word("${{a}").unwrap_err().failure(),
        &ExpandFailure::BadSubstitution
    );
    assert_eq!(
        word("${PWD:-x").unwrap_err().failure(),
        &ExpandFailure::MissingBrace
    );
    assert_eq!(
        word("${PWD:=x}").unwrap_err().failure(),
        &ExpandFailure::UnsupportedModifier(":=".into())
    );
    assert_eq!(
        word("${PWD=x}").unwrap_err().failure(),
        &ExpandFailure::UnsupportedModifier("=".into())
    );
    assert_eq!(
        word("${PWD/x").unwrap_err().failure(),
        &ExpandFailure::MissingSlash
    );
}

#[test]
fn default_values() {
    assert_eq!(ok("${PWD:-x}"), "/home");
    assert_eq!(ok("${UNSET:-x}"), "x");
    assert_eq!(ok("${NULL:-x}"), "x");
    assert_eq!(ok("${PWD-x}"), "/home");
    assert_eq!(ok("${UNSET-x}"), "x");
    assert_eq!(ok("${NULL-x}"), "");
    assert_eq!(ok("${UNSET:-$PWD}"), "/home");
    assert_eq!(ok("${UNSET:-${SHELL:-no}}"), "bash");
    assert_eq!(ok("${UNSET:-'a b'}"), "a b");
    assert_eq!(ok("${UNSET:-}"), "");
}

#[test]
fn alternative_values() {
    assert_eq!(ok("${PWD:+x}"), "x");
    assert_eq!(ok("${UNSET:+x}"), "");
    assert_eq!(ok("${NULL:+x}"), "");
    assert_eq!(ok("${PWD+x}"), "x");
    assert_eq!(ok("${UNSET+x}"), "");
    assert_eq!(ok("${NULL+x}"), "x");
}

#[test]
fn required_values() {
    assert_eq!(ok("${PWD:?msg}"), "/home");
    assert_eq!(ok("${PWD?msg}"), "/home");
    assert_eq!(ok("${NULL?msg}"), "");
    let e = word("${NULL:?must be set $SHELL}").unwrap_err();
    assert_eq!(
        e.failure(),
        &ExpandFailure::Required {
            name: "NULL".into(),
            message: "must be set bash".into()
        }
    );
    let e = word("${UNSET?}").unwrap_err();
    assert!(
        e.to_string().ends_with("UNSET: is not allowed to be unset"),
        "{e}"
    );
    let e = word("${NULL:?}").unwrap_err();
    assert!(
        e.to_string().ends_with("NULL: is not allowed to be empty"),
        "{e}"
    );
}

fn with(vars: &[(&str, &str)], w: &str) -> Result<Processed, ExpandError> {
    let env: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Lex::new('\\').process(w, &env)
}

#[test]
fn prefix_and_suffix_removal() {
    let foo = [("FOO", "xxyy")];
    assert_eq!(with(&foo, "${FOO#*x*y}").unwrap().word, "y");
    assert_eq!(with(&foo, "${FOO#*}").unwrap().word, "xxyy");
    assert_eq!(with(&foo, "${FOO##*x}").unwrap().word, "yy");
    assert_eq!(with(&foo, "${FOO#}").unwrap().word, "xxyy");
    assert_eq!(with(&foo, "${FOO%y*}").unwrap().word, "xxy");
    assert_eq!(with(&foo, "${FOO%%y*}").unwrap().word, "xx");
    assert_eq!(with(&[("FOO", "xx**")], "${FOO%%\\**}").unwrap().word, "xx");
    assert_eq!(with(&[("FOO", "???y")], "${FOO#?\\?}").unwrap().word, "?y");
    assert_eq!(
        with(
            &[("FOO", "()[]{}^$.*?|\\x")],
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}"
        )
        .unwrap()
        .word,
        "x"
    );
    assert_eq!(
        with(&[("FOO", "xxyy"), ("BAR", "x")], "${FOO#$BAR}")
            .unwrap()
            .word,
        "xyy"
    );
    assert!(with(&foo, "${FOO#\\x}").is_err());
}

#[test]
fn pattern_replacement() {
    let r = with(
        &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
    )
    .unwrap();
    assert_eq!(r.word, "/foo.*/*.txt - /foo..*.txt");
    let r = with(
        &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
    )
    .unwrap();
    assert_eq!(r.word, "/tmp/bar.txt - /bar.txt");
    let r = with(&[("FOO", "/tmp/foo.txt")], "${FOO//\\//\\/}").unwrap();
    assert_eq!(r.word, "\\/tmp\\/foo.txt");
    assert!(with(&[("FOO", "x")], "${FOO//ww}").is_err());
    assert!(with(&[("FOO", "x")], "${FOO//}").is_err());
    assert_eq!(with(&[("FOO", "xxyy")], "${FOO///}").unwrap().word, "xxyy");
    assert_eq!(with(&[], "${FOO///}").unwrap().word, "");
}

#[test]
fn matched_and_unmatched_names() {
    let r = with(
        &[("FOO", "xxx"), ("BAR", "")],
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
    )
    .unwrap();
    assert_eq!(r.word, "xxx  ccc");
    assert_eq!(r.matched, set(&["FOO", "BAR"]));
    assert_eq!(r.unmatched, set(&["BAZ"]));
    let r = with(
        &[("FOO", "xxx"), ("BAR", "")],
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
    )
    .unwrap();
    assert_eq!(r.word, "aaa  ");
    let r = with(&[("DUMMY", "d")], "x").unwrap();
    assert!(r.matched.is_empty() && r.unmatched.is_empty());
}

#[test]
fn platform_style_word() {
    let r = with(
        &[
            ("VERSION", "v1.2.3"),
            ("TARGETOS", "linux"),
            ("TARGETARCH", "arm"),
            ("TARGETVARIANT", "v7"),
        ],
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
    )
    .unwrap();
    assert_eq!(r.word, "something-v1.2.3.linux-arm-v7.tar.gz");
    assert_eq!(r.matched.len(), 4);
}

#[test]
fn word_splitting() {
    assert_eq!(words("hello world"), ["hello", "world"]);
    assert_eq!(words("  hello   world  "), ["hello", "world"]);
    assert_eq!(words("'hello world'"), ["hello world"]);
    assert_eq!(words("\"hello world\" x"), ["hello world", "x"]);
    assert_eq!(words("hello\\ world"), ["hello world"]);
    assert_eq!(words("$SPACED"), ["a", "b"]);
    assert_eq!(words("\"$SPACED\""), ["a  b"]);
    assert_eq!(words("80/tcp $UNSET 443"), ["80/tcp", "443"]);
    assert!(words("   ").is_empty());
    assert!(words("''").is_empty());
}

#[test]
fn raw_options() {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    assert_eq!(lex.process_word("'a'\"b\"", &EmptyEnv).unwrap(), "'a'\"b\"");
    let mut lex = Lex::new('\\');
    lex.raw_escapes = true;
    assert_eq!(lex.process_word("a\\ b", &EmptyEnv).unwrap(), "a\\ b");
    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    assert_eq!(
        lex.process_word("$A ${B} ${C:-x} ${D/a/b} ${PWD}", &env())
            .unwrap(),
        "$A ${B} ${C:-x} ${D/a/b} /home"
    );
    let mut lex = Lex::new('\\');
    lex.skip_process_quotes = true;
    assert_eq!(
        lex.process_word("echo '$PWD' \"x\"", &env()).unwrap(),
        "echo '/home' \"x\""
    );
}

#[test]
fn names_used() {
    assert_eq!(
        variables_used("${A:-$B} $C \\$D '$E' \"$F\" ${G#$H}", '\\'),
        set(&["A", "B", "C", "F", "G", "H"])
    );
    assert_eq!(variables_used("${A:?}", '\\'), set(&["A"]));
    assert_eq!(variables_used("$A ${", '\\'), set(&["A"]));
    assert_eq!(variables_used("`$A $B", '`'), set(&["B"]));
}

#[test]
fn env_lookup_last_wins() {
    let e = env_from_strings(["car=hat", "car=bike", "foo"]);
    assert_eq!(e.lookup("car"), Some("bike"));
    assert_eq!(e.lookup("foo"), Some(""));
    assert_eq!(e.lookup("Car"), None);
    let m: HashMap<String, String> = e.into_iter().collect();
    assert_eq!(Lex::new('\\').process_word("$car", &m).unwrap(), "bike");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = "${A:-".repeat(10_000) + &"}".repeat(10_000);
    assert_eq!(word(&deep).unwrap_err().failure(), &ExpandFailure::TooDeep);
    let fine = "${A:-".repeat(10) + "x" + &"}".repeat(10);
    assert_eq!(ok(&fine), "x");
}
