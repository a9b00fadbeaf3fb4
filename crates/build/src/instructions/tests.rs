use std::time::Duration;

use super::*;
use crate::shell_words::{env_from_strings, Lex};

fn df(text: &str) -> Dockerfile {
    let ast = crate::parser::parse(text).unwrap_or_else(|e| panic!("{e}"));
    from_ast(&ast).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> String {
    let ast = crate::parser::parse(text).unwrap_or_else(|e| panic!("{e}"));
    from_ast(&ast).unwrap_err().to_string()
}

/// The single instruction after `FROM x`.
fn inst(line: &str) -> Instruction {
    let d = df(&format!("FROM x\n{line}\n"));
    assert_eq!(d.stages[0].commands.len(), 1);
    d.stages[0].commands[0].instruction.clone()
}

fn inst_err(line: &str) -> String {
    err(&format!("FROM x\n{line}\n"))
}

#[test]
fn stages_and_meta_args() {
    let d = df("ARG A=1\nARG B\nFROM alpine:${A} AS Build\nRUN x\nFROM --platform=linux/arm64 build\nARG C\n");
    assert_eq!(
        d.meta_arg_pairs(),
        [("A".into(), Some("1".into())), ("B".into(), None)]
    );
    assert_eq!(d.stages.len(), 2);
    let s0 = &d.stages[0];
    assert_eq!(
        (s0.name.as_deref(), s0.base.as_str(), s0.line),
        (Some("build"), "alpine:${A}", 3)
    );
    assert_eq!(s0.original, "FROM alpine:${A} AS Build");
    assert_eq!(s0.commands[0].line, 4);
    let s1 = &d.stages[1];
    assert_eq!(
        (s1.name.as_deref(), s1.platform.as_deref()),
        (None, Some("linux/arm64"))
    );
    assert!(matches!(s1.commands[0].instruction, Instruction::Arg(_)));
    assert_eq!(d.stage("BUILD").map(|s| s.line), Some(3));
    assert_eq!(d.stage("1").map(|s| s.line), Some(5));
}

#[test]
fn stage_name_rules() {
    assert_eq!(
        df("FROM x AS a-b_c.1\n").stages[0].name.as_deref(),
        Some("a-b_c.1")
    );
    assert_eq!(
        df("FROM x as MiXed\n").stages[0].name.as_deref(),
        Some("mixed")
    );
    assert_eq!(
        err("FROM x AS 1abc\n"),
        "dockerfile parse error on line 1: invalid name for build stage: \"1abc\", name can't start with a number or contain symbols"
    );
    assert!(err("FROM x AS a$b\n").contains("invalid name for build stage"));
    assert_eq!(
        err("FROM x y\n"),
        "dockerfile parse error on line 1: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM\n"),
        "dockerfile parse error on line 1: FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM x AS a\nFROM y AS A\n"),
        "dockerfile parse error on line 2: duplicate stage name \"a\""
    );
}

#[test]
fn instruction_before_from() {
    assert_eq!(
        err("RUN x\nFROM y\n"),
        "dockerfile parse error on line 1: no build stage in current context"
    );
}

#[test]
fn unknown_instruction_with_suggestion() {
    assert_eq!(
        err("FROM x\n\nRUNN echo\n"),
        "dockerfile parse error on line 3: unknown instruction: RUNN (did you mean RUN?)"
    );
    assert_eq!(
        inst_err("copyy a b"),
        "dockerfile parse error on line 2: unknown instruction: copyy (did you mean copy?)"
    );
    assert_eq!(
        inst_err("FOOBARBAZ x"),
        "dockerfile parse error on line 2: unknown instruction: FOOBARBAZ"
    );
}

#[test]
fn run_forms() {
    let Instruction::Run(r) = inst("RUN echo $HOME && ls") else {
        panic!()
    };
    assert_eq!(r.cmd, ShellOrExec::Shell("echo $HOME && ls".into()));
    assert!(r.mounts.is_empty() && r.network.is_none());
    let Instruction::Run(r) = inst("RUN [\"/bin/sh\", \"-c\", \"x\"]") else {
        panic!()
    };
    assert_eq!(
        r.cmd,
        ShellOrExec::Exec(vec!["/bin/sh".into(), "-c".into(), "x".into()])
    );
}

#[test]
fn run_flags() {
    let Instruction::Run(r) =
        inst("RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=t --network=none --security=insecure make")
    else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[0].mount_type, MountType::Cache);
    assert_eq!(r.mounts[1].id.as_deref(), Some("t"));
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security, Some(SecurityMode::Insecure));
    assert_eq!(
        inst_err("RUN --network=bridge x"),
        "dockerfile parse error on line 2: invalid network mode \"bridge\""
    );
    assert_eq!(
        inst_err("RUN --mount=type=nfs x"),
        "dockerfile parse error on line 2: unsupported mount type \"nfs\""
    );
    assert_eq!(
        inst_err("RUN --foo=1 x"),
        "dockerfile parse error on line 2: Unknown flag: foo"
    );
}

#[test]
fn run_heredoc_is_kept() {
    let d = df("FROM x\nRUN <<-EOF bash\n\techo hi\nEOF\n");
    let Instruction::Run(r) = &d.stages[0].commands[0].instruction else {
        panic!()
    };
    assert_eq!(r.cmd, ShellOrExec::Shell("<<-EOF bash".into()));
    assert_eq!(r.heredocs[0].content, "\techo hi\n");
    assert!(r.heredocs[0].chomp);
    assert_eq!(d.stages[0].commands[0].end_line, 4);
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        inst("CMD echo hi"),
        Instruction::Cmd(ShellOrExec::Shell("echo hi".into()))
    );
    assert_eq!(
        inst("CMD [\"a\"]"),
        Instruction::Cmd(ShellOrExec::Exec(vec!["a".into()]))
    );
    assert_eq!(
        inst("ENTRYPOINT []"),
        Instruction::Entrypoint(ShellOrExec::Exec(vec![]))
    );
    assert_eq!(
        inst("SHELL [\"/bin/bash\", \"-c\"]"),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        inst_err("SHELL /bin/bash -c"),
        "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(
        inst_err("SHELL []"),
        "dockerfile parse error on line 2: SHELL requires at least one argument"
    );
    assert_eq!(
        inst_err("CMD --x=1 a"),
        "dockerfile parse error on line 2: Unknown flag: x"
    );
}

#[test]
fn env_and_label() {
    assert_eq!(
        inst("ENV A=1 B=\"x y\""),
        Instruction::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"x y\"".into())
        ])
    );
    assert_eq!(
        inst("ENV A x y"),
        Instruction::Env(vec![("A".into(), "x y".into())])
    );
    assert_eq!(
        inst("LABEL a=b"),
        Instruction::Label(vec![("a".into(), "b".into())])
    );
    assert_eq!(
        inst_err("ENV =x"),
        "dockerfile parse error on line 2: ENV names can not be blank"
    );
    assert_eq!(
        inst_err("LABEL"),
        "dockerfile parse error on line 2: LABEL requires at least one argument"
    );
    assert_eq!(
        inst_err("ENV"),
        "dockerfile parse error on line 2: ENV requires at least one argument"
    );
}

#[test]
fn arg_forms() {
    assert_eq!(
        inst("ARG A B=2 C="),
        Instruction::Arg(vec![
            ("A".into(), None),
            ("B".into(), Some("2".into())),
            ("C".into(), Some(String::new()))
        ])
    );
    assert_eq!(
        inst_err("ARG =x"),
        "dockerfile parse error on line 2: ARG names can not be blank"
    );
    assert_eq!(
        inst_err("ARG"),
        "dockerfile parse error on line 2: ARG requires at least one argument"
    );
}

#[test]
fn copy_flags_and_sources() {
    let Instruction::Copy(c) =
        inst("COPY --from=build --chown=a:b --chmod=0755 --link --parents --exclude=*.md --exclude=x a b /dst/")
    else {
        panic!()
    };
    assert_eq!(c.sources, ["a", "b"]);
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref()),
        (Some("a:b"), Some("0755"))
    );
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", "x"]);
    let Instruction::Copy(c) = inst("COPY [\"a b\", \"/c d/\"]") else {
        panic!()
    };
    assert!(c.json);
    assert_eq!(
        (c.sources.as_slice(), c.dest.as_str()),
        (&["a b".to_string()][..], "/c d/")
    );
    assert_eq!(
        inst_err("COPY onlyone"),
        "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(
        inst_err("COPY --checksum=x a b"),
        "dockerfile parse error on line 2: Unknown flag: checksum"
    );
    assert_eq!(
        inst_err("COPY --from=a --from=b x y"),
        "dockerfile parse error on line 2: Duplicate flag specified: from"
    );
}

#[test]
fn add_flags() {
    let Instruction::Add(a) = inst(
        "ADD --checksum=sha256:abc --keep-git-dir=true --chown=1 --link=false https://x/y.tgz /y",
    ) else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert!(a.keep_git_dir && !a.link);
    assert_eq!(a.chown.as_deref(), Some("1"));
    assert_eq!(inst_err("ADD a"), "dockerfile parse error on line 2: ADD requires at least two arguments, but only one was provided. Destination could not be determined");
    assert_eq!(
        inst_err("ADD --from=x a b"),
        "dockerfile parse error on line 2: Unknown flag: from"
    );
}

#[test]
fn copy_heredoc_sources() {
    let d = df("FROM x\nCOPY <<A <<-'B' /dst/\nhello $X\nA\n\tbody\nB\n");
    let Instruction::Copy(c) = &d.stages[0].commands[0].instruction else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(c.inline.len(), 2);
    assert_eq!(
        (
            c.inline[0].path.as_str(),
            c.inline[0].data.as_str(),
            c.inline[0].expand
        ),
        ("A", "hello $X\n", true)
    );
    assert_eq!(
        (
            c.inline[1].path.as_str(),
            c.inline[1].data.as_str(),
            c.inline[1].expand
        ),
        ("B", "body\n", false)
    );
    assert_eq!(
        err("FROM x\nCOPY a <<EOF\nx\nEOF\n"),
        "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn healthcheck() {
    assert_eq!(
        inst("HEALTHCHECK NONE"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        inst("HEALTHCHECK --interval=5m --timeout=3s --start-period=1s --start-interval=100ms --retries=3 CMD curl -f http://localhost/ || exit 1"),
        Instruction::Healthcheck(Healthcheck::Cmd {
            test: vec!["CMD-SHELL".into(), "curl -f http://localhost/ || exit 1".into()],
            interval: Some(Duration::from_secs(300)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_secs(1)),
            start_interval: Some(Duration::from_millis(100)),
            retries: Some(3),
        })
    );
    let Instruction::Healthcheck(Healthcheck::Cmd {
        test,
        interval,
        retries,
        ..
    }) = inst("HEALTHCHECK --interval=0s CMD [\"/bin/check\", \"x\"]")
    else {
        panic!()
    };
    assert_eq!(test, ["CMD", "/bin/check", "x"]);
    assert_eq!((interval, retries), (None, None));
}

#[test]
fn healthcheck_errors() {
    let e = |l: &str| inst_err(l).replace("dockerfile parse error on line 2: ", "");
    assert_eq!(
        e("HEALTHCHECK"),
        "HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        e("HEALTHCHECK NONE x"),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        e("HEALTHCHECK CMD"),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        e("HEALTHCHECK RUN x"),
        "Unknown type \"RUN\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        e("HEALTHCHECK --interval=1 CMD x"),
        "time: missing unit in duration \"1\""
    );
    assert_eq!(
        e("HEALTHCHECK --interval=10us CMD x"),
        "Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        e("HEALTHCHECK --timeout=-1s CMD x"),
        "Interval \"timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        e("HEALTHCHECK --retries=-1 CMD x"),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        e("HEALTHCHECK --retries=x CMD x"),
        "strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    assert_eq!(e("HEALTHCHECK --bogus=1 CMD x"), "Unknown flag: bogus");
}

#[test]
fn single_argument_instructions() {
    assert_eq!(inst("USER app:app"), Instruction::User("app:app".into()));
    assert_eq!(inst("WORKDIR /a b"), Instruction::Workdir("/a b".into()));
    assert_eq!(
        inst("STOPSIGNAL SIGKILL"),
        Instruction::Stopsignal("SIGKILL".into())
    );
    assert_eq!(
        inst("MAINTAINER me <me@x>"),
        Instruction::Maintainer("me <me@x>".into())
    );
    assert_eq!(
        inst_err("USER"),
        "dockerfile parse error on line 2: USER requires exactly one argument"
    );
    assert_eq!(
        inst_err("WORKDIR"),
        "dockerfile parse error on line 2: WORKDIR requires exactly one argument"
    );
    assert_eq!(
        inst_err("STOPSIGNAL"),
        "dockerfile parse error on line 2: STOPSIGNAL requires exactly one argument"
    );
}

#[test]
fn expose_and_volume() {
    assert_eq!(
        inst("EXPOSE 8080 443/tcp 53/udp"),
        Instruction::Expose(vec!["443/tcp".into(), "53/udp".into(), "8080".into()])
    );
    assert_eq!(
        inst("VOLUME [\"/a\", \"/b\"]"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        inst("VOLUME /a /b"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        inst_err("VOLUME [\" \"]"),
        "dockerfile parse error on line 2: VOLUME specified can not be an empty string"
    );
    assert_eq!(
        inst_err("VOLUME []"),
        "dockerfile parse error on line 2: VOLUME requires at least one argument"
    );
    assert_eq!(
        inst_err("EXPOSE"),
        "dockerfile parse error on line 2: EXPOSE requires at least one argument"
    );
}

#[test]
fn onbuild() {
    assert_eq!(
        inst("ONBUILD RUN echo hi"),
        Instruction::Onbuild("RUN echo hi".into())
    );
    assert_eq!(
        inst("  onbuild   COPY . /app"),
        Instruction::Onbuild("COPY . /app".into())
    );
    let d = df("FROM x\nONBUILD RUN <<EOF\necho\nEOF\n");
    assert_eq!(
        d.stages[0].commands[0].instruction,
        Instruction::Onbuild("RUN <<EOF\necho\nEOF".into())
    );
    assert_eq!(
        inst_err("ONBUILD ONBUILD RUN x"),
        "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        inst_err("ONBUILD FROM x"),
        "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        inst_err("ONBUILD maintainer x"),
        "dockerfile parse error on line 2: MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        inst_err("ONBUILD"),
        "dockerfile parse error on line 2: ONBUILD requires at least one argument"
    );
}

#[test]
fn ignored_flags_on_arg_and_stopsignal() {
    assert!(matches!(inst("ARG --whatever=1 A"), Instruction::Arg(_)));
    assert!(matches!(
        inst("STOPSIGNAL --x=1 9"),
        Instruction::Stopsignal(_)
    ));
}

fn env(items: &[&str]) -> Vec<(String, String)> {
    env_from_strings(items.iter().copied())
}

#[test]
fn expansion_follows_buildkit() {
    let lex = Lex::new('\\');
    let e = env(&["D=/data", "U=app", "P=80 443", "N=name", "V=v\"1\""]);
    let x = |line: &str| inst(line).expand(&lex, &e).unwrap();
    assert_eq!(
        x("ENV $N=$D \"K\"=\"a b\""),
        Instruction::Env(vec![
            ("name".into(), "/data".into()),
            ("K".into(), "a b".into())
        ])
    );
    assert_eq!(
        x("LABEL v=$V"),
        Instruction::Label(vec![("v".into(), "v\"1\"".into())])
    );
    assert_eq!(x("WORKDIR $D/x"), Instruction::Workdir("/data/x".into()));
    assert_eq!(x("USER ${U}"), Instruction::User("app".into()));
    // Sorted as written at parse time (as BuildKit), then expanded.
    assert_eq!(
        x("EXPOSE 53 $P"),
        Instruction::Expose(vec!["80".into(), "443".into(), "53".into()])
    );
    assert_eq!(x("VOLUME $D"), Instruction::Volume(vec!["/data".into()]));
    assert_eq!(
        x("ARG X=${D}/y Y"),
        Instruction::Arg(vec![
            ("X".into(), Some("/data/y".into())),
            ("Y".into(), None)
        ])
    );
    let Instruction::Copy(c) = x("COPY --from=$N --chown=$U src/$N $D/") else {
        panic!()
    };
    assert_eq!(
        (
            c.from.as_deref(),
            c.chown.as_deref(),
            c.sources[0].as_str(),
            c.dest.as_str()
        ),
        (Some("name"), Some("app"), "src/name", "/data/")
    );
    // Not expanded by the builder.
    assert_eq!(x("RUN echo $D"), inst("RUN echo $D"));
    assert_eq!(x("CMD echo $D"), inst("CMD echo $D"));
    assert_eq!(x("ENTRYPOINT [\"$D\"]"), inst("ENTRYPOINT [\"$D\"]"));
    assert_eq!(x("SHELL [\"$D\"]"), inst("SHELL [\"$D\"]"));
}

#[test]
fn expansion_of_from_mounts_and_heredocs() {
    let lex = Lex::new('\\');
    let e = env(&["TAG=3.19", "BUILDPLATFORM=linux/amd64", "DIR=/cache", "X=1"]);
    let d = df("ARG TAG\nFROM --platform=$BUILDPLATFORM alpine:$TAG\nRUN --mount=type=cache,target=$DIR true\nCOPY <<A <<'B' /\n\"$X\"\nA\n$X\nB\n");
    let from = Instruction::From(From {
        image: d.stages[0].base.clone(),
        platform: d.stages[0].platform.clone(),
        alias: None,
    });
    let Instruction::From(f) = from.expand(&lex, &e).unwrap() else {
        panic!()
    };
    assert_eq!(
        (f.image.as_str(), f.platform.as_deref()),
        ("alpine:3.19", Some("linux/amd64"))
    );
    let Instruction::Run(r) = d.stages[0].commands[0]
        .instruction
        .expand(&lex, &e)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(r.mounts[0].target.as_deref(), Some("/cache"));
    assert!(!r.mounts[0].needs_expansion);
    let Instruction::Copy(c) = d.stages[0].commands[1]
        .instruction
        .expand(&lex, &e)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(c.inline[0].data, "\"1\"\n");
    assert_eq!(c.inline[1].data, "$X\n");
}

#[test]
fn expansion_errors_surface() {
    let lex = Lex::new('\\');
    let r = inst("WORKDIR ${X:?must be set}").expand(&lex, &env(&[]));
    assert_eq!(
        r.unwrap_err().to_string(),
        "failed to process \"${X:?must be set}\": X: must be set"
    );
}

#[test]
fn variables_used_per_instruction() {
    let names = |line: &str| {
        inst(line)
            .variables_used('\\')
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("COPY --from=$S --chown=$U:$G $A ${B:-$C} /d"),
        ["A", "B", "C", "G", "S", "U"]
    );
    assert_eq!(
        names("RUN --mount=type=cache,target=$T echo $NOT_THIS"),
        ["T"]
    );
    assert!(names("CMD echo $X").is_empty());
    assert_eq!(names("ENV A=$B"), ["B"]);
    assert_eq!(names("ARG A=$B"), ["B"]);
}

#[test]
fn keywords_and_suggestions() {
    assert_eq!(inst("RUN x").keyword(), "RUN");
    assert_eq!(super::convert::INSTRUCTIONS.len(), 18);
}
