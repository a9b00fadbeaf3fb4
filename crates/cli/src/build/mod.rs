//! `berth build` (and `berth image build`): the classic builder's `POST /build`, as the docker
//! CLI drives it with `DOCKER_BUILDKIT=0`, with a live view on terminals.

mod context;
mod output;
mod tty;

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context as _, Result};
use berth_api::client::encode_query;
use clap::Args;
use hyper::Method;

use crate::{connect, status};

#[derive(Args, Debug)]
pub struct BuildOpts {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Set metadata for an image
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    network: Option<String>,
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long = "add-host")]
    add_hosts: Vec<String>,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Set type of progress output ("auto", "plain", "tty")
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty"])]
    progress: String,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    force_rm: bool,
    /// PATH | URL | -
    #[arg(value_name = "PATH | URL | -")]
    args: Vec<String>,
}

/// `KEY=VALUE` → (KEY, VALUE); `KEY` alone → its value in our environment, if set
/// (left out otherwise).
fn build_args(args: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    out
}

/// `KEY=VALUE` → (KEY, VALUE); `KEY` alone → (KEY, "").
fn labels(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (a.clone(), String::new()),
        })
        .collect()
}

/// The query of `POST /build`.
fn query(o: &BuildOpts, dockerfile: Option<&str>, remote: Option<&str>) -> Result<String> {
    let mut q: Vec<(&str, String)> = Vec::new();
    for t in &o.tags {
        q.push(("t", t.clone()));
    }
    if let Some(r) = remote {
        q.push(("remote", r.to_string()));
    }
    if let Some(d) = dockerfile {
        q.push(("dockerfile", d.to_string()));
    }
    if o.quiet {
        q.push(("q", "1".into()));
    }
    if o.no_cache {
        q.push(("nocache", "1".into()));
    }
    if o.rm {
        q.push(("rm", "1".into()));
    }
    if o.force_rm {
        q.push(("forcerm", "1".into()));
    }
    if o.pull {
        q.push(("pull", "1".into()));
    }
    if let Some(t) = &o.target {
        q.push(("target", t.clone()));
    }
    if let Some(n) = &o.network {
        q.push(("networkmode", n.clone()));
    }
    for h in &o.add_hosts {
        q.push(("extrahosts", h.clone()));
    }
    if let Some(p) = &o.platform {
        q.push(("platform", p.clone()));
    }
    q.push((
        "buildargs",
        serde_json::to_string(&build_args(&o.build_args))?,
    ));
    q.push(("labels", serde_json::to_string(&labels(&o.labels))?));
    // Berth's own: each text names its step, for the live view of parallel stages.
    q.push(("stepids", "1".into()));
    Ok(encode_query(&q))
}

/// The usage error of a wrong number of arguments, in docker's words.
fn usage_error(command: &str) -> anyhow::Error {
    status(
        1,
        format!(
            "berth: '{command}' requires 1 argument\n\nUsage:  {command} [OPTIONS] PATH | URL | -\n\n\
             Run '{command} --help' for more information"
        ),
    )
}

/// `berth build`; `command` is how it was called (`berth build`, `berth image build`).
pub async fn build(host: &str, o: &BuildOpts, command: &str) -> Result<i32> {
    let [path] = o.args.as_slice() else {
        return Err(usage_error(command));
    };
    let prepared = context::prepare(path, o.file.as_deref())?;
    let q = query(
        o,
        prepared.dockerfile.as_deref(),
        prepared.remote.as_deref(),
    )?;
    let client = connect(host).await?;
    let resp = client
        .request(
            Method::POST,
            "/build",
            &q,
            &[("Content-Type", "application/x-tar".to_string())],
            prepared.body,
        )
        .await?;
    let tty = std::io::stdout().is_terminal();
    let mode = if o.quiet {
        output::Mode::Quiet
    } else if o.progress == "tty" || (o.progress == "auto" && tty) {
        output::Mode::Tty
    } else {
        output::Mode::Plain
    };
    let image_id = output::run(resp, prepared.sent, mode).await?;
    if let Some(f) = &o.iidfile {
        if image_id.is_empty() {
            return Err(status(
                1,
                format!("Server did not provide an image ID. Cannot write {f}"),
            ));
        }
        std::fs::write(f, &image_id).with_context(|| format!("writing {f}"))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        o: BuildOpts,
    }

    #[test]
    fn the_query_carries_the_options() {
        std::env::set_var("BERTH_TEST_BUILD_ARG", "from-env");
        let Cmd { o } = Cmd::parse_from([
            "build",
            "-t",
            "a:1",
            "--tag",
            "b",
            "--build-arg",
            "X=1",
            "--build-arg",
            "BERTH_TEST_BUILD_ARG",
            "--build-arg",
            "BERTH_TEST_UNSET_ARG",
            "--label",
            "l",
            "--no-cache",
            "--target",
            "t",
            "--add-host",
            "h:1.2.3.4",
            ".",
        ]);
        let q = query(&o, Some("Dockerfile"), None).unwrap();
        assert_eq!(
            q,
            "t=a%3A1&t=b&dockerfile=Dockerfile&nocache=1&rm=1&target=t&extrahosts=h%3A1.2.3.4&\
             buildargs=%7B%22BERTH_TEST_BUILD_ARG%22%3A%22from-env%22%2C%22X%22%3A%221%22%7D&\
             labels=%7B%22l%22%3A%22%22%7D&stepids=1"
        );
    }
}
