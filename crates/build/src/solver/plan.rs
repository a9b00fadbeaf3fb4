//! Which stages a build needs, and in which order: the target, and every stage it uses through
//! `FROM <stage>`, `COPY --from=<stage>` or `RUN --mount=from=<stage>`, each before its users
//! (as BuildKit, any stage may name any other, earlier or later; a cycle is an error). Stages
//! nobody needs are not built.

use std::collections::HashMap;

use super::{BuildOptions, SolveError};
use crate::instructions::Instruction;
use crate::platform::{platform_args, Platform};
use crate::shell_words::Lex;
use crate::Dockerfile;

/// What [`plan`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indexes of the stages to build, each after those it uses.
    pub order: Vec<usize>,
    /// The target stage's index.
    pub target: usize,
    /// Each needed stage's base, expanded with the meta args: a stage index or an image name.
    pub bases: HashMap<usize, Base>,
    /// The meta args (`ARG` before the first `FROM`) with their values for this build.
    pub meta_args: Vec<(String, String)>,
    /// Steps in the stages to build (`FROM`s included), for `Step N/M`.
    pub total_steps: usize,
    /// For each stage, the stages it uses (sorted, once each).
    pub deps: Vec<Vec<usize>>,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Stage(usize),
    Scratch,
    Image(String),
}

/// The meta args' values: a build arg given for one wins over its default; the platform args
/// are there too (BuildKit's automatic ones).
pub fn meta_args(
    df: &Dockerfile,
    opts: &BuildOptions,
    platform: &Platform,
) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = platform_args(&Platform::host(), platform);
    let lex = Lex::new(df.escape);
    for (name, default) in df.meta_arg_pairs() {
        let value = match opts.build_args.get(&name) {
            Some(Some(v)) => Some(v.clone()),
            _ => default.map(|d| lex.process_word(&d, &values).unwrap_or(d)),
        };
        if let Some(v) = value {
            values.retain(|(k, _)| *k != name);
            values.push((name, v));
        }
    }
    values
}

/// The stage `name` refers to (its lower-cased name, or its index), if any.
fn stage_index(df: &Dockerfile, name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    df.stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| name.parse::<usize>().ok().filter(|&i| i < df.stages.len()))
}

/// Plans the build of `opts.target` (the last stage without one).
pub fn plan(df: &Dockerfile, opts: &BuildOptions, platform: &Platform) -> Result<Plan, SolveError> {
    if df.stages.is_empty() {
        return Err(SolveError::Invalid(
            "the Dockerfile (Dockerfile) cannot be empty".into(),
        ));
    }
    let target = match &opts.target {
        Some(t) if !t.is_empty() => df
            .stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| SolveError::UnknownTarget(t.clone()))?,
        _ => df.stages.len() - 1,
    };
    let meta = meta_args(df, opts, platform);
    let lex = Lex::new(df.escape);
    let mut bases = HashMap::new();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); df.stages.len()];
    for (i, stage) in df.stages.iter().enumerate() {
        let base = lex
            .process_word(&stage.base, &meta)
            .map_err(|e| SolveError::Expand {
                word: stage.base.clone(),
                message: e.to_string(),
            })?;
        if base.is_empty() {
            return Err(SolveError::BlankBase(stage.base.clone()));
        }
        let lower = base.to_ascii_lowercase();
        let named = df
            .stages
            .iter()
            .take(i)
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        let b = match named {
            Some(j) => Base::Stage(j),
            None if lower == "scratch" => Base::Scratch,
            None => Base::Image(base),
        };
        if let Base::Stage(j) = b {
            deps[i].push(j);
        }
        bases.insert(i, b);
        for cmd in &stage.commands {
            let froms: Vec<&str> = match &cmd.instruction {
                Instruction::Copy(c) => c.from.as_deref().into_iter().collect(),
                Instruction::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
                _ => Vec::new(),
            };
            for from in froms {
                // A `--from` with variables is resolved with the meta args here; the stage
                // resolves it again with its own.
                let from = lex
                    .process_word(from, &meta)
                    .unwrap_or_else(|_| from.to_string());
                if let Some(j) = stage_index(df, &from) {
                    deps[i].push(j);
                }
            }
        }
    }
    for d in &mut deps {
        d.sort_unstable();
        d.dedup();
    }
    let mut order = Vec::new();
    let mut state = vec![Visit::New; df.stages.len()];
    visit(df, target, &deps, &mut state, &mut order)?;
    let total_steps = order
        .iter()
        .map(|&i| df.stages.get(i).map_or(0, |s| s.commands.len() + 1))
        .sum();
    Ok(Plan {
        order,
        target,
        bases,
        meta_args: meta,
        total_steps,
        deps,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    Open,
    Done,
}

fn visit(
    df: &Dockerfile,
    i: usize,
    deps: &[Vec<usize>],
    state: &mut [Visit],
    order: &mut Vec<usize>,
) -> Result<(), SolveError> {
    match state.get(i) {
        Some(Visit::Done) | None => return Ok(()),
        Some(Visit::Open) => {
            let name = df
                .stages
                .get(i)
                .and_then(|s| s.name.clone())
                .unwrap_or_else(|| i.to_string());
            return Err(SolveError::Cycle(name));
        }
        Some(Visit::New) => {}
    }
    state[i] = Visit::Open;
    for &d in deps.get(i).map(Vec::as_slice).unwrap_or_default() {
        visit(df, d, deps, state, order)?;
    }
    state[i] = Visit::Done;
    order.push(i);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(text: &str, target: Option<&str>) -> Result<Plan, SolveError> {
        let df = crate::parse(text).unwrap();
        let opts = BuildOptions {
            target: target.map(str::to_string),
            ..BuildOptions::default()
        };
        plan(&df, &opts, &Platform::default())
    }

    #[test]
    fn only_the_stages_the_target_uses_are_built_each_after_its_inputs() {
        let text = "FROM busybox AS a\nRUN true\nFROM busybox AS unused\nFROM a AS b\nFROM busybox AS c\nCOPY --from=b /x /x\nCOPY --from=0 /y /y\n";
        let p = plan_of(text, None).unwrap();
        assert_eq!(p.order, vec![0, 2, 3]);
        assert_eq!(p.target, 3);
        assert_eq!(p.bases[&2], Base::Stage(0));
        assert_eq!(p.bases[&1], Base::Image("busybox".into()));
        // FROM a, FROM b(=a) ... steps: a: 2, b: 1, c: 3.
        assert_eq!(p.total_steps, 6);
        let p = plan_of(text, Some("A")).unwrap();
        assert_eq!((p.order.clone(), p.target), (vec![0], 0));
        assert!(matches!(
            plan_of(text, Some("nope")),
            Err(SolveError::UnknownTarget(t)) if t == "nope"
        ));
    }

    #[test]
    fn a_cycle_of_copy_from_is_refused() {
        let text =
            "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n";
        assert!(matches!(plan_of(text, None), Err(SolveError::Cycle(_))));
    }

    #[test]
    fn bases_expand_with_the_meta_args() {
        let text = "ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG:-latest}\nFROM scratch\n";
        let p = plan_of(text, Some("")).unwrap();
        assert_eq!(p.bases[&0], Base::Image("busybox:latest".into()));
        assert_eq!(p.bases[&1], Base::Scratch);
        let df = crate::parse("ARG B\nFROM $B\n").unwrap();
        assert!(matches!(
            plan(&df, &BuildOptions::default(), &Platform::default()),
            Err(SolveError::BlankBase(_))
        ));
    }
}
