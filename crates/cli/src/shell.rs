//! Shell completions (`berth completion bash|zsh|fish`, with the names of containers,
//! images, networks and volumes asked from the daemon through the hidden `berth __complete
//! KIND`) and man pages (`berth man DIR`).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory};
use serde_json::Value;

use crate::{connect, Cli};

#[derive(Args, Debug)]
pub struct CompletionOpts {
    /// The shell: bash, zsh or fish
    shell: String,
}

#[derive(Args, Debug)]
pub struct ManOpts {
    /// The directory to write the pages to
    dir: String,
}

#[derive(Args, Debug)]
pub struct CompleteOpts {
    /// containers, images, networks or volumes
    kind: String,
}

/// Subcommands whose arguments are containers, images, networks or volumes (after `berth`, or
/// after `berth container|image|network|volume`).
const CONTAINER_CMDS: &str = "attach commit cp exec export kill logs pause port rename restart rm start stats stop top unpause update wait inspect";
const IMAGE_CMDS: &str = "create history push rmi run save tag";

/// The bash function that completes names, wrapped around clap's `_berth`.
const BASH_NAMES: &str = r#"
# names from the daemon (berth __complete KIND) where a command takes them
_berth_kind() {
    local i w words=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case "$w" in
            -H|--host) ((i++)) ;;
            -*) ;;
            *) words+=("$w") ;;
        esac
    done
    local c1=${words[0]} c2=${words[1]}
    case "$c1" in
        container) [[ " rm inspect " == *" $c2 "* ]] && echo containers ;;
        image) [[ " rm inspect history push save tag " == *" $c2 "* ]] && echo images ;;
        network) [[ " rm inspect connect disconnect " == *" $c2 "* ]] && echo networks ;;
        volume) [[ " rm inspect " == *" $c2 "* ]] && echo volumes ;;
        *)
            if [[ " @CONTAINERS@ " == *" $c1 "* ]]; then echo containers
            elif [[ " @IMAGES@ " == *" $c1 "* ]]; then echo images
            fi ;;
    esac
}

_berth_with_names() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [[ $cur != -* ]]; then
        local kind
        kind=$(_berth_kind)
        if [[ -n $kind ]]; then
            local host=() i
            for ((i = 1; i < COMP_CWORD; i++)); do
                if [[ ${COMP_WORDS[i]} == -H || ${COMP_WORDS[i]} == --host ]]; then
                    host=(-H "${COMP_WORDS[i+1]}")
                fi
            done
            COMPREPLY=($(compgen -W "$(berth "${host[@]}" __complete "$kind" 2>/dev/null)" -- "$cur"))
            [[ ${#COMPREPLY[@]} -gt 0 ]] && return 0
        fi
    fi
    _berth "$@"
}

complete -F _berth_with_names -o bashdefault -o default berth
"#;

/// Prints the completion script for `shell`.
pub fn completion(o: &CompletionOpts) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    let shell = match o.shell.as_str() {
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        other => bail!("unsupported shell {other:?}: use bash, zsh or fish"),
    };
    clap_complete::generate(shell, &mut cmd, "berth", &mut out);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    match shell {
        clap_complete::Shell::Bash => text.push_str(
            &BASH_NAMES
                .replace("@CONTAINERS@", CONTAINER_CMDS)
                .replace("@IMAGES@", IMAGE_CMDS),
        ),
        clap_complete::Shell::Fish => {
            text.push_str(&format!(
                "complete -c berth -n '__fish_seen_subcommand_from {CONTAINER_CMDS}' -f -a '(berth __complete containers 2>/dev/null)'\n\
                 complete -c berth -n '__fish_seen_subcommand_from {IMAGE_CMDS}' -f -a '(berth __complete images 2>/dev/null)'\n"
            ));
        }
        _ => {}
    }
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(0)
}

/// `berth __complete KIND`: the names of the daemon's objects of a kind, one a line.
pub async fn complete(host: &str, o: &CompleteOpts) -> Result<i32> {
    let client = connect(host).await?;
    let names = |list: &[Value], key: &str| -> Vec<String> {
        list.iter()
            .filter_map(|v| v[key].as_str().map(String::from))
            .collect()
    };
    let out: Vec<String> = match o.kind.as_str() {
        "containers" => {
            let list: Vec<Value> = client.get_json("/containers/json", "all=1").await?;
            list.iter()
                .flat_map(|c| {
                    c["Names"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|n| n.as_str().map(|s| s.trim_start_matches('/').to_string()))
                })
                .collect()
        }
        "images" => {
            let list: Vec<Value> = client.get_json("/images/json", "").await?;
            list.iter()
                .flat_map(|i| i["RepoTags"].as_array().cloned().unwrap_or_default())
                .filter_map(|t| t.as_str().map(String::from))
                .filter(|t| t != "<none>:<none>")
                .collect()
        }
        "networks" => {
            let list: Vec<Value> = client.get_json("/networks", "").await?;
            names(&list, "Name")
        }
        "volumes" => {
            let v: Value = client.get_json("/volumes", "").await?;
            names(
                v["Volumes"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                "Name",
            )
        }
        other => bail!("unknown kind {other:?}: containers, images, networks or volumes"),
    };
    for n in out {
        println!("{n}");
    }
    Ok(0)
}

/// `berth man DIR`: a page for berth and one for each of its commands (`berth-ps.1`,
/// `berth-container-ls.1`).
pub fn man(o: &ManOpts) -> Result<i32> {
    let dir = Path::new(&o.dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    write_pages(dir, &cmd)?;
    Ok(0)
}

/// The page of `cmd` (built: subcommands are named `berth-ps`) and of its subcommands.
fn write_pages(dir: &Path, cmd: &clap::Command) -> Result<()> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(dir, sub)?;
    }
    Ok(())
}
