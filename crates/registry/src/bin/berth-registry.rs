//! `berth-registry`: the registry client on its own, against an image store directory, for
//! benchmarks, tests and debugging (the engine's `pull`/`push` go through berthd).
//!
//! ```text
//! berth-registry [--insecure HOST]... pull --root DIR [--platform os/arch] REF
//! berth-registry [--insecure HOST]... push --root DIR [--chunk-size N] SOURCE [TARGET]
//! berth-registry login HOST -u USER --password-stdin
//! ```
//! Credentials come from docker's `config.json` (`$DOCKER_CONFIG`, else `~/.docker`); extra
//! certificate authorities from `/etc/berth/certs.d/<host>/*.crt` (`--certs-dir`).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use berth_image::import::ImageStore;
use berth_image::manifest::Platform;
use berth_image::reference::Reference;
use berth_registry::credentials::{self, Credential, Credentials};
use berth_registry::progress::{Progress, ProgressFn};
use berth_registry::{Client, ClientOptions, PullOptions, PushOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-registry",
    about = "Pull and push images between a registry and an image store"
)]
struct Cli {
    /// A registry host where plain HTTP is allowed (loopback always is).
    #[arg(long, global = true)]
    insecure: Vec<String>,
    /// Extra certificate authorities: every `<dir>/<host>/*.crt`.
    #[arg(long, global = true, default_value = "/etc/berth/certs.d")]
    certs_dir: PathBuf,
    /// Print no progress.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull REF into the store at --root.
    Pull {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        platform: Option<String>,
        reference: String,
    },
    /// Push the store's image SOURCE as TARGET (default: SOURCE).
    Push {
        #[arg(long)]
        root: PathBuf,
        /// Upload in chunks of this many bytes.
        #[arg(long)]
        chunk_size: Option<u64>,
        source: String,
        target: Option<String>,
    },
    /// Check and save a login for HOST.
    Login {
        host: String,
        #[arg(long, short)]
        username: String,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run() -> Result<()> {
    let cli = Cli::parse();
    let config = credentials::default_path();
    let saved = Credentials::load(&config)?;
    let client_for = |host: &str, cred: Option<Credential>| {
        let mut credentials = HashMap::new();
        if let Some(c) = cred.or_else(|| saved.get(host)) {
            credentials.insert(host.to_string(), c);
        }
        Client::new(ClientOptions {
            insecure: cli.insecure.clone(),
            credentials,
            certs_dir: Some(cli.certs_dir.clone()),
            ..Default::default()
        })
    };
    let progress = (!cli.quiet).then(printer);
    match &cli.command {
        Command::Pull {
            root,
            platform,
            reference,
        } => {
            let reference: Reference = reference.parse()?;
            let client = client_for(reference.domain(), None)?;
            let store = Arc::new(ImageStore::open(root)?);
            let options = PullOptions {
                platform: platform.as_deref().map(Platform::parse).transpose()?,
                progress,
                ..Default::default()
            };
            let pulled = berth_registry::pull(&client, &store, &reference, &options).await?;
            println!("Digest: {}", pulled.digest);
            let status = if pulled.downloaded {
                "Downloaded newer image for"
            } else {
                "Image is up to date for"
            };
            println!("Status: {status} {}", reference.familiar());
        }
        Command::Push {
            root,
            chunk_size,
            source,
            target,
        } => {
            let source: Reference = source.parse()?;
            let target: Reference = target.as_deref().unwrap_or(&source.to_string()).parse()?;
            let client = client_for(target.domain(), None)?;
            let store = ImageStore::open(root)?;
            let options = PushOptions {
                chunk_size: *chunk_size,
                progress,
                ..Default::default()
            };
            let pushed =
                berth_registry::push(&client, &store, &source.to_string(), &target, &options)
                    .await?;
            println!(
                "{}: digest: {} size: {}",
                pushed.tag.as_deref().unwrap_or("<digest>"),
                pushed.digest,
                pushed.size
            );
        }
        Command::Login {
            host,
            username,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("only --password-stdin is supported");
            }
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password")?;
            let cred = Credential {
                username: username.clone(),
                password: password.trim_end_matches(['\n', '\r']).to_string(),
            };
            client_for(host, Some(cred.clone()))?
                .check_login(host)
                .await?;
            let mut saved = saved.clone();
            saved.set(host, &cred);
            saved.save(&config)?;
            println!("Login Succeeded");
        }
    }
    Ok(())
}

/// Prints a line each time a layer's status changes, as `docker pull` does without a terminal.
fn printer() -> ProgressFn {
    let last: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    Arc::new(move |p: &Progress| {
        let status = p.status.to_string();
        let mut last = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.get(&p.id) != Some(&status) {
            println!("{}: {status}", p.id);
            last.insert(p.id.clone(), status);
        }
    })
}
