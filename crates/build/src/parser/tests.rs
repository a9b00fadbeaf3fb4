use super::*;

fn ast(text: &str) -> Ast {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// (keyword lower-cased, args) of every node.
fn dump(text: &str) -> Vec<(String, Vec<String>)> {
    ast(text)
        .nodes
        .into_iter()
        .map(|n| (n.command(), n.args))
        .collect()
}

fn one(text: &str) -> Node {
    let mut a = ast(text);
    assert_eq!(a.nodes.len(), 1, "{:?}", a.nodes);
    a.nodes.remove(0)
}

#[test]
fn instructions_lines_and_case() {
    let a = ast("FROM alpine\n\nrun echo hi\nRun  echo   two\n");
    let n = &a.nodes;
    assert_eq!(n.len(), 3);
    assert_eq!((n[0].keyword.as_str(), n[0].start_line), ("FROM", 1));
    assert_eq!((n[1].keyword.as_str(), n[1].start_line), ("run", 3));
    assert_eq!(n[2].command(), "run");
    assert_eq!(n[2].args, ["echo   two"]);
    assert_eq!(n[2].original, "Run  echo   two");
}

#[test]
fn leading_whitespace_and_comments() {
    let a = ast("  # a comment\n\t FROM x\n   # another\n  RUN y # not a comment\n");
    assert_eq!(a.nodes.len(), 2);
    assert_eq!(a.nodes[0].start_line, 2);
    assert_eq!(a.nodes[1].args, ["y # not a comment"]);
    assert_eq!(a.nodes[1].comments, ["another"]);
}

#[test]
fn continuation_indent_buildkit_testfile() {
    let text = "FROM ubuntu:14.04\n\nRUN echo hello\\\n  world\\\n  goodnight  \\\n  moon\\\n  light\\\nning\nRUN echo hello  \\\n  world\nRUN echo hello  \\\nworld\nRUN echo hello \\\ngoodbye\\\nfrog\nRUN echo hello  \\  \nworld\nRUN echo hi \\\n \\\n world \\\n\\\n good\\\n\\\nnight\nRUN echo goodbye\\\nfrog\nRUN echo good\\\nbye\\\nfrog\n\nRUN echo hello \\\n# this is a comment\n\n# this is a comment with a blank line surrounding it\n\nthis is some more useful stuff\n";
    let runs: Vec<String> = dump(text)
        .into_iter()
        .skip(1)
        .map(|(_, a)| a.join("|"))
        .collect();
    assert_eq!(
        runs,
        [
            "echo hello  world  goodnight    moon  lightning",
            "echo hello    world",
            "echo hello  world",
            "echo hello goodbyefrog",
            "echo hello  world",
            "echo hi   world  goodnight",
            "echo goodbyefrog",
            "echo goodbyefrog",
            "echo hello this is some more useful stuff",
        ]
    );
}

#[test]
fn empty_continuation_lines_warn() {
    let a = ast("FROM x\nRUN a \\\n\nb\n");
    assert_eq!(a.nodes[1].args, ["a b"]);
    assert_eq!(a.nodes[1].end_line, 4);
    assert_eq!(a.warnings.len(), 1);
    assert!(a.warnings[0]
        .message
        .starts_with("Empty continuation line found in: RUN a b"));
    assert!(ast("FROM x\nRUN a \\\n# c\nb\n").warnings.is_empty());
}

#[test]
fn escaped_escape_is_not_a_continuation() {
    let a = ast("FROM x\nRUN echo a\\\\\nRUN b\n");
    assert_eq!(a.nodes.len(), 3);
    assert_eq!(a.nodes[1].args, ["echo a\\\\"]);
}

#[test]
fn continuation_at_eof_keeps_the_instruction() {
    // BuildKit accepts a trailing continuation at the end of the file.
    let a = ast("FROM x\nRUN echo hi \\\n");
    assert_eq!(a.nodes[1].args, ["echo hi"]);
    let a = ast("FROM x\nRUN echo hi \\");
    assert_eq!(a.nodes[1].original, "RUN echo hi ");
}

#[test]
fn crlf_and_bom() {
    let a = ast("\u{feff}FROM x\r\nRUN a \\\r\n  b\r\n");
    assert_eq!(a.nodes[0].keyword, "FROM");
    assert_eq!(a.nodes[1].args, ["a   b"]);
}

#[test]
fn escape_directive_backtick() {
    let a = ast("# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\nCOPY a\\ b c:\\\n");
    assert_eq!(a.escape, '`');
    assert_eq!(a.nodes[1].args, ["dir c:\\   /w"]);
    assert_eq!(a.nodes[2].args, ["a\\", "b", "c:\\"]);
    assert_eq!(a.directive("escape"), Some("`"));
}

#[test]
fn directives_case_and_values() {
    let a = ast("# SYNTAX = docker/dockerfile:1.7\n#Check=skip=all\n#escape=\\\nFROM x\n");
    assert_eq!(a.directive("syntax"), Some("docker/dockerfile:1.7"));
    assert_eq!(a.directive("check"), Some("skip=all"));
    assert_eq!(a.escape, '\\');
    assert_eq!(a.directives.len(), 3);
    assert_eq!(a.directives[1].line, 2);
}

#[test]
fn directive_after_comment_is_a_comment() {
    // BuildKit testfile escape-after-comment.
    let text = "# Comment here.\n# escape = `\n\nFROM image\nENV GOPATH \\\n\\go\n";
    let a = ast(text);
    assert_eq!(a.escape, '\\');
    assert!(a.directives.is_empty());
    assert_eq!(a.nodes[1].args, ["GOPATH", "\\go", ""]);
}

#[test]
fn directive_after_blank_line_or_instruction_is_ignored() {
    assert_eq!(ast("\n# escape=`\nFROM x\n").escape, '\\');
    assert_eq!(ast("FROM x\n# escape=`\nRUN a\n").escape, '\\');
    // escape-nonewline: directives then comments with no blank line.
    let a = ast("# escape = `\n# comment\nFROM image\nENV GOPATH `\n\\go\n");
    assert_eq!(a.nodes[1].args, ["GOPATH", "\\go", ""]);
}

#[test]
fn directive_errors() {
    let e = parse("# escape=`\n# escape=\\\nFROM x\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 2: only one escape parser directive can be used"
    );
    let e = parse("# escape=x\nFROM x\n").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::InvalidEscapeToken("x".into()));
    assert_eq!(e.line, 1);
}

#[test]
fn no_instructions() {
    for text in ["", "\n\n", "# just a comment\n", "# escape=`\n"] {
        assert_eq!(
            parse(text).unwrap_err().kind,
            ParseErrorKind::NoInstructions,
            "{text:?}"
        );
    }
}

#[test]
fn json_and_shell_forms() {
    let n = one("CMD [\"echo\", \"hi\"]");
    assert!(n.json);
    assert_eq!(n.args, ["echo", "hi"]);
    let n = one("CMD [\"echo\", 'hi']");
    assert!(!n.json);
    assert_eq!(n.args, ["[\"echo\", 'hi']"]);
    let n = one("ENTRYPOINT []");
    assert!(n.json && n.args.is_empty());
    let n = one("COPY [\"a b\", \"/c\"]");
    assert_eq!(n.args, ["a b", "/c"]);
    let n = one("VOLUME /a   /b");
    assert_eq!(n.args, ["/a", "/b"]);
    let e = parse("FROM x\nRUN [\"a\", 1]\n").unwrap_err();
    assert_eq!((e.line, e.kind), (2, ParseErrorKind::JsonNotStrings));
}

#[test]
fn flags_are_split_off() {
    let n = one("COPY --from=build --chown=a:b --chmod=755 --link src /dst");
    assert_eq!(
        n.flags,
        ["--from=build", "--chown=a:b", "--chmod=755", "--link"]
    );
    assert_eq!(n.args, ["src", "/dst"]);
    let n = one("RUN --mount=type=cache,target=/x --network=none make");
    assert_eq!(n.flags, ["--mount=type=cache,target=/x", "--network=none"]);
    assert_eq!(n.args, ["make"]);
    let n = one("FROM --platform=$BUILDPLATFORM golang AS build");
    assert_eq!(n.flags, ["--platform=$BUILDPLATFORM"]);
    assert_eq!(n.args, ["golang", "AS", "build"]);
}

#[test]
fn env_label_arg_forms() {
    let n = one("ENV A=1 B=\"two words\" C=a\\ b");
    assert_eq!(
        n.args,
        ["A", "1", "=", "B", "\"two words\"", "=", "C", "a\\ b", "="]
    );
    let n = one("LABEL key value with spaces");
    assert_eq!(n.args, ["key", "value with spaces", ""]);
    let n = one("ARG A B=2 C=");
    assert_eq!(n.args, ["A", "B=2", "C="]);
    let e = parse("FROM x\nENV onlykey\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 2: ENV must have two arguments"
    );
    let e = parse("FROM x\nLABEL a=b c\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 2: Syntax error - can't find = in \"c\". Must be of the form: name=value"
    );
}

#[test]
fn onbuild_has_a_sub_node() {
    let n = one("ONBUILD RUN echo hi");
    let sub = n.sub.as_deref().unwrap();
    assert_eq!(sub.command(), "run");
    assert_eq!(n.args, ["RUN", "echo hi"]);
}

#[test]
fn unknown_instructions_are_kept_by_the_parser() {
    let n = one("RUNN echo");
    assert_eq!(n.keyword, "RUNN");
    assert!(n.args.is_empty());
}

#[test]
fn heredoc_run() {
    let a = ast("FROM x\nRUN <<EOF\necho hi\n\techo tab\nEOF\nRUN after\n");
    let run = &a.nodes[1];
    assert_eq!(run.args, ["<<EOF"]);
    assert_eq!((run.start_line, run.end_line), (2, 5));
    assert_eq!(run.heredocs.len(), 1);
    let h = &run.heredocs[0];
    assert_eq!((h.name.as_str(), h.expand, h.chomp), ("EOF", true, false));
    assert_eq!(h.content, "echo hi\n\techo tab\n");
    assert_eq!(a.nodes[2].start_line, 6);
}

#[test]
fn heredoc_chomp_strips_tabs_and_finds_indented_terminator() {
    let n = &ast("FROM x\nRUN <<-EOT\n\t\techo a\n\tEOT\n").nodes[1];
    let h = &n.heredocs[0];
    assert!(h.chomp);
    assert_eq!(h.content, "\t\techo a\n");
    assert_eq!(h.chomped_content(), "echo a\n");
    // Without `-` an indented terminator is content.
    assert!(parse("FROM x\nRUN <<EOT\n\tEOT\n").is_err());
}

#[test]
fn heredoc_quoted_delimiters() {
    let a = ast("FROM x\nRUN <<'EOF'\n$HOME\nEOF\nRUN <<\"EOF\"\nx\nEOF\n");
    assert!(!a.nodes[1].heredocs[0].expand);
    assert!(!a.nodes[2].heredocs[0].expand);
    assert_eq!(a.nodes[1].heredocs[0].content, "$HOME\n");
}

#[test]
fn several_heredocs_in_one_instruction() {
    let a = ast("FROM x\nRUN <<A cat /dev/stdin - <<B\nfirst\nA\nsecond\nB\n");
    let docs: Vec<(&str, &str)> = a.nodes[1]
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str()))
        .collect();
    assert_eq!(docs, [("A", "first\n"), ("B", "second\n")]);
    assert_eq!(a.nodes[1].end_line, 6);
}

#[test]
fn heredoc_copy_and_onbuild() {
    let a = ast("FROM x\nCOPY <<EOF /path\nhello\nEOF\nONBUILD RUN <<EOF\nx\nEOF\n");
    assert_eq!(a.nodes[1].args, ["<<EOF", "/path"]);
    assert_eq!(a.nodes[1].heredocs[0].content, "hello\n");
    assert_eq!(a.nodes[2].heredocs[0].content, "x\n");
}

#[test]
fn no_heredoc_in_json_form_or_other_instructions() {
    let a = ast("FROM x\nRUN [\"cat\", \"<<EOF\"]\nEOF\n");
    assert_eq!(a.nodes.len(), 3);
    let a = ast("FROM x\nCMD cat <<EOF\nEOF\n");
    assert_eq!(a.nodes.len(), 3);
}

#[test]
fn heredoc_with_crlf_terminator() {
    let a = ast("FROM x\r\nRUN <<EOF\r\nline\r\nEOF\r\n");
    assert_eq!(a.nodes[1].heredocs[0].content, "line\r\n");
}

#[test]
fn unterminated_heredoc() {
    let e = parse("FROM x\nRUN <<EOF\necho\n").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::UnterminatedHeredoc);
    assert_eq!((e.line, e.end_line), (2, 3));
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 2: unterminated heredoc"
    );
}

#[test]
fn heredoc_after_continuation() {
    let a = ast("FROM x\nRUN cat \\\n  <<EOF\nbody\nEOF\n");
    assert_eq!(a.nodes[1].heredocs[0].content, "body\n");
    assert_eq!((a.nodes[1].start_line, a.nodes[1].end_line), (2, 5));
}

#[test]
fn line_too_long() {
    let text = format!("FROM x\nRUN {}\n", "a".repeat(MAX_LINE));
    let e = parse(&text).unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::LineTooLong);
    assert_eq!(e.line, 2);
}

#[test]
fn comments_attach_to_the_next_instruction() {
    // As BuildKit: a directive is not a comment, an empty `#` resets, a
    // blank line does not.
    let a = ast("# syntax=x\n# first\n#\n# second\n\n# third\nFROM x\n");
    assert_eq!(a.nodes[0].comments, ["second", "third"]);
}
