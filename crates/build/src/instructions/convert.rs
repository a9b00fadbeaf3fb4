//! Parser nodes → typed instructions and stages (BuildKit's `parse.go`).

use std::time::Duration;

use super::duration::parse_go_duration;
use super::flags::{Flags, Kind};
use super::{
    Add, Command, Copy, Dockerfile, From, Healthcheck, InlineSource, Instruction, InstructionError,
    InstructionErrorKind as E, NetworkMode, Run, RunMount, SecurityMode, ShellOrExec, Stage,
};
use crate::parser::{parse_heredoc, Ast, Node};

/// Every instruction keyword, upper-case.
pub const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Builds stages from a parsed file.
pub fn from_ast(ast: &Ast) -> Result<Dockerfile, InstructionError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &ast.nodes {
        let at = |kind| InstructionError {
            line: node.start_line,
            kind,
        };
        let instruction = parse_node(node).map_err(at)?;
        let command = Command {
            instruction,
            line: node.start_line,
            end_line: node.end_line,
            original: node.original.clone(),
        };
        match command.instruction {
            Instruction::Arg(_) if stages.is_empty() => meta_args.push(command),
            Instruction::From(from) => {
                if let Some(name) = &from.alias {
                    if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                        return Err(at(E::DuplicateStageName(name.clone())));
                    }
                }
                stages.push(Stage {
                    name: from.alias,
                    base: from.image,
                    platform: from.platform,
                    line: node.start_line,
                    original: node.original.trim().to_string(),
                    commands: Vec::new(),
                });
            }
            _ => match stages.last_mut() {
                Some(stage) => stage.commands.push(command),
                None => return Err(at(E::NoStage)),
            },
        }
    }
    Ok(Dockerfile {
        meta_args,
        stages,
        escape: ast.escape,
        directives: ast.directives.clone(),
        warnings: ast.warnings.clone(),
    })
}

/// Converts one node.
pub fn parse_node(node: &Node) -> Result<Instruction, E> {
    let args = &node.args;
    let no_flags = || Flags::parse(&node.flags, &[]).map(|_| ());
    match node.command().as_str() {
        "env" => {
            no_flags()?;
            Ok(Instruction::Env(key_values(args, "ENV")?))
        }
        "label" => {
            no_flags()?;
            Ok(Instruction::Label(key_values(args, "LABEL")?))
        }
        "maintainer" => {
            let v = exactly_one(args, "MAINTAINER")?;
            no_flags()?;
            Ok(Instruction::Maintainer(v))
        }
        "add" => parse_add(node),
        "copy" => parse_copy(node),
        "from" => parse_from(node).map(Instruction::From),
        "onbuild" => parse_onbuild(node),
        "workdir" => {
            let v = exactly_one(args, "WORKDIR")?;
            no_flags()?;
            Ok(Instruction::Workdir(v))
        }
        "run" => parse_run(node),
        "cmd" => {
            no_flags()?;
            Ok(Instruction::Cmd(shell_or_exec(node)))
        }
        "entrypoint" => {
            no_flags()?;
            Ok(Instruction::Entrypoint(shell_or_exec(node)))
        }
        "healthcheck" => parse_healthcheck(node),
        "expose" => {
            if args.is_empty() {
                return Err(E::AtLeastOneArgument("EXPOSE"));
            }
            no_flags()?;
            let mut ports = args.clone();
            ports.sort();
            Ok(Instruction::Expose(ports))
        }
        "user" => {
            let v = exactly_one(args, "USER")?;
            no_flags()?;
            Ok(Instruction::User(v))
        }
        "volume" => {
            if args.is_empty() {
                return Err(E::AtLeastOneArgument("VOLUME"));
            }
            no_flags()?;
            let mut volumes = Vec::with_capacity(args.len());
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err(E::EmptyVolume);
                }
                volumes.push(v.to_string());
            }
            Ok(Instruction::Volume(volumes))
        }
        // Flags on STOPSIGNAL and ARG are ignored, as BuildKit does.
        "stopsignal" => Ok(Instruction::Stopsignal(exactly_one(args, "STOPSIGNAL")?)),
        "arg" => parse_arg(args),
        "shell" => {
            no_flags()?;
            match shell_or_exec(node) {
                ShellOrExec::Exec(v) if v.is_empty() => Err(E::AtLeastOneArgument("SHELL")),
                ShellOrExec::Shell(s) if s.is_empty() => Err(E::AtLeastOneArgument("SHELL")),
                ShellOrExec::Exec(v) => Ok(Instruction::Shell(v)),
                ShellOrExec::Shell(_) => Err(E::NotJson("SHELL")),
            }
        }
        _ => Err(E::UnknownInstruction {
            name: node.keyword.clone(),
            suggestion: suggest(&node.keyword),
        }),
    }
}

fn exactly_one(args: &[String], cmd: &'static str) -> Result<String, E> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(E::ExactlyOneArgument(cmd)),
    }
}

/// ENV/LABEL: (key, value, separator) triples from the parser.
fn key_values(args: &[String], cmd: &'static str) -> Result<Vec<(String, String)>, E> {
    if args.is_empty() {
        return Err(E::AtLeastOneArgument(cmd));
    }
    if args.len() % 3 != 0 {
        return Err(E::TooManyArguments(cmd));
    }
    args.chunks(3)
        .map(|kv| match kv {
            [k, _, _] if k.is_empty() => Err(E::BlankNames(cmd)),
            [k, v, _] => Ok((k.clone(), v.clone())),
            _ => Err(E::TooManyArguments(cmd)),
        })
        .collect()
}

/// BuildKit's `handleJSONArgs`: exec form as is, shell form joined.
fn shell_or_exec(node: &Node) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(node.args.clone())
    } else {
        ShellOrExec::Shell(node.args.join(" "))
    }
}

fn parse_arg(args: &[String]) -> Result<Instruction, E> {
    if args.is_empty() {
        return Err(E::AtLeastOneArgument("ARG"));
    }
    args.iter()
        .map(|a| match a.split_once('=') {
            Some(("", _)) => Err(E::BlankNames("ARG")),
            Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
            None => Ok((a.clone(), None)),
        })
        .collect::<Result<_, _>>()
        .map(Instruction::Arg)
}

fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_from(node: &Node) -> Result<From, E> {
    let args = &node.args;
    let alias = match args.as_slice() {
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !is_valid_stage_name(&lower) {
                return Err(E::InvalidStageName(name.clone()));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err(E::FromArguments),
    };
    let flags = Flags::parse(&node.flags, &[("platform", Kind::String)])?;
    Ok(From {
        image: args.first().cloned().unwrap_or_default(),
        platform: flags.string("platform"),
        alias,
    })
}

fn parse_onbuild(node: &Node) -> Result<Instruction, E> {
    let Some(first) = node.args.first() else {
        return Err(E::AtLeastOneArgument("ONBUILD"));
    };
    Flags::parse(&node.flags, &[])?;
    let trigger = first.trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err(E::OnbuildChaining),
        "MAINTAINER" | "FROM" => return Err(E::OnbuildTrigger(trigger)),
        _ => {}
    }
    // The original without `(?i)^\s*ONBUILD\s*`.
    let trimmed = node.original.trim_start();
    let mut expr = match trimmed.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => trimmed.get(7..).unwrap_or_default(),
        _ => trimmed,
    }
    .trim_start()
    .to_string();
    for h in &node.heredocs {
        expr.push('\n');
        expr.push_str(&h.content);
        expr.push_str(&h.name);
    }
    Ok(Instruction::Onbuild(expr))
}

fn parse_run(node: &Node) -> Result<Instruction, E> {
    let flags = Flags::parse(
        &node.flags,
        &[
            ("mount", Kind::Strings),
            ("network", Kind::String),
            ("security", Kind::String),
        ],
    )?;
    let network = match flags.string("network").as_deref() {
        None => None,
        Some("default") => Some(NetworkMode::Default),
        Some("none") => Some(NetworkMode::None),
        Some("host") => Some(NetworkMode::Host),
        Some(other) => return Err(E::InvalidNetwork(other.to_string())),
    };
    let security = match flags.string("security").as_deref() {
        None => None,
        Some("sandbox") => Some(SecurityMode::Sandbox),
        Some("insecure") => Some(SecurityMode::Insecure),
        Some(other) => return Err(E::InvalidSecurity(other.to_string())),
    };
    let mounts = flags
        .strings("mount")
        .iter()
        .map(|m| RunMount::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Instruction::Run(Run {
        cmd: shell_or_exec(node),
        mounts,
        network,
        security,
        heredocs: node.heredocs.clone(),
    }))
}

/// Go's `time.ParseDuration` with BuildKit's rules: empty or 0 is unset,
/// anything else must be at least 1ms.
fn interval(flags: &Flags, name: &str) -> Result<Option<Duration>, E> {
    let Some(v) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let (negative, d) = parse_go_duration(&v).map_err(E::Duration)?;
    if d.is_zero() {
        return Ok(None);
    }
    if negative || d < Duration::from_millis(1) {
        return Err(E::IntervalTooShort(name.to_string()));
    }
    Ok(Some(d))
}

fn parse_healthcheck(node: &Node) -> Result<Instruction, E> {
    let Some(typ) = node.args.first() else {
        return Err(E::AtLeastOneArgument("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    let rest = node.args.get(1..).unwrap_or_default();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(E::HealthcheckNoneArguments);
        }
        return Ok(Instruction::Healthcheck(Healthcheck::None));
    }
    let flags = Flags::parse(
        &node.flags,
        &[
            ("interval", Kind::String),
            ("timeout", Kind::String),
            ("start-period", Kind::String),
            ("start-interval", Kind::String),
            ("retries", Kind::String),
        ],
    )?;
    if typ != "CMD" {
        return Err(E::HealthcheckType(typ));
    }
    if rest.is_empty() {
        return Err(E::HealthcheckMissingCommand);
    }
    let test = if node.json {
        std::iter::once("CMD".to_string())
            .chain(rest.iter().cloned())
            .collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let retries = match flags.string("retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let n: i64 = v.parse::<i32>().map_err(|_| E::Retries(v.clone()))?.into();
            Some(u32::try_from(n).map_err(|_| E::NegativeRetries(n))?)
        }
    };
    Ok(Instruction::Healthcheck(Healthcheck::Cmd {
        test,
        interval: interval(&flags, "interval")?,
        timeout: interval(&flags, "timeout")?,
        start_period: interval(&flags, "start-period")?,
        start_interval: interval(&flags, "start-interval")?,
        retries,
    }))
}

/// Splits COPY/ADD arguments into paths, inline heredoc sources and the
/// destination.
fn sources_and_dest(
    node: &Node,
    cmd: &'static str,
) -> Result<(Vec<String>, Vec<InlineSource>, String), E> {
    let Some((dest, srcs)) = node.args.split_last() else {
        return Err(E::NoDestination(cmd));
    };
    let heredoc_of = |w: &str| parse_heredoc(w).ok().flatten();
    if heredoc_of(dest).is_some() {
        return Err(E::BadHeredoc(cmd, "a destination"));
    }
    let mut paths = Vec::new();
    let mut inline = Vec::new();
    for src in srcs {
        match heredoc_of(src) {
            Some(h) => {
                let content = node
                    .heredocs
                    .iter()
                    .rev()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                let data = if h.chomp {
                    crate::parser::chomp(&content)
                } else {
                    content
                };
                inline.push(InlineSource {
                    path: h.name,
                    data,
                    expand: h.expand,
                });
            }
            None => paths.push(src.clone()),
        }
    }
    Ok((paths, inline, dest.clone()))
}

fn parse_add(node: &Node) -> Result<Instruction, E> {
    if node.args.len() < 2 {
        return Err(E::NoDestination("ADD"));
    }
    let flags = Flags::parse(
        &node.flags,
        &[
            ("exclude", Kind::Strings),
            ("chown", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
            ("keep-git-dir", Kind::Bool),
            ("checksum", Kind::String),
        ],
    )?;
    let (sources, inline, dest) = sources_and_dest(node, "ADD")?;
    Ok(Instruction::Add(Add {
        sources,
        inline,
        dest,
        chown: flags.string("chown").filter(|v| !v.is_empty()),
        chmod: flags.string("chmod").filter(|v| !v.is_empty()),
        checksum: flags.string("checksum").filter(|v| !v.is_empty()),
        keep_git_dir: flags.bool("keep-git-dir"),
        link: flags.bool("link"),
        exclude: flags.strings("exclude"),
        json: node.json,
    }))
}

fn parse_copy(node: &Node) -> Result<Instruction, E> {
    if node.args.len() < 2 {
        return Err(E::NoDestination("COPY"));
    }
    let flags = Flags::parse(
        &node.flags,
        &[
            ("exclude", Kind::Strings),
            ("parents", Kind::Bool),
            ("chown", Kind::String),
            ("from", Kind::String),
            ("chmod", Kind::String),
            ("link", Kind::Bool),
        ],
    )?;
    let (sources, inline, dest) = sources_and_dest(node, "COPY")?;
    Ok(Instruction::Copy(Copy {
        sources,
        inline,
        dest,
        from: flags.string("from").filter(|v| !v.is_empty()),
        chown: flags.string("chown").filter(|v| !v.is_empty()),
        chmod: flags.string("chmod").filter(|v| !v.is_empty()),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.strings("exclude"),
        json: node.json,
    }))
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// BuildKit's `suggest.WrapError`: the closest keyword within distance 2,
/// in the case the user wrote (all lower, all upper, or as listed).
fn suggest(word: &str) -> Option<String> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for opt in INSTRUCTIONS {
        let d = distance(&lower, &opt.to_lowercase());
        if d < best.map_or(3, |(bd, _)| bd) {
            best = Some((d, opt));
        }
    }
    let (_, opt) = best?;
    Some(if word == word.to_lowercase() {
        opt.to_lowercase()
    } else {
        opt.to_string()
    })
}
