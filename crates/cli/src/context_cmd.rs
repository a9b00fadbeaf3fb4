//! `berth context create|ls|use|inspect|rm|export|import` over the docker CLI's own store (see
//! [`crate::context`]), with docker's output; and `berth system dial-stdio`, the far end of
//! `-H ssh://`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::connection::{self, env};
use crate::context::{self, check_name, Ctx, Store, TlsFiles, DEFAULT, ENDPOINT, TLS_FILES};
use crate::Cli;

#[derive(Subcommand, Debug)]
pub enum ContextCmd {
    /// Create a context
    Create(CreateOpts),
    /// List contexts
    #[command(alias = "list")]
    Ls(LsOpts),
    /// Set the current docker context
    Use(UseOpts),
    /// Display detailed information on one or more contexts
    Inspect(InspectOpts),
    /// Remove one or more contexts
    #[command(alias = "remove")]
    Rm(RmOpts),
    /// Export a context to a tar archive FILE or a tar stream on STDOUT.
    Export(ExportOpts),
    /// Import a context from a tar or zip file
    Import(ImportOpts),
}

#[derive(Args, Debug)]
pub struct CreateOpts {
    name: String,
    /// Description of the context
    #[arg(long, default_value = "")]
    description: String,
    /// set the docker endpoint
    #[arg(long)]
    docker: Option<String>,
    /// create context from a named context
    #[arg(long)]
    from: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsOpts {
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Only show context names
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct UseOpts {
    name: String,
}

#[derive(Args, Debug)]
pub struct InspectOpts {
    names: Vec<String>,
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmOpts {
    #[arg(required = true)]
    names: Vec<String>,
    /// Force the removal of a context in use
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct ExportOpts {
    name: String,
    file: Option<String>,
}

#[derive(Args, Debug)]
pub struct ImportOpts {
    name: String,
    file: String,
}

pub async fn context(cli: &Cli, cmd: &ContextCmd) -> Result<i32> {
    let store = Store::open();
    match cmd {
        ContextCmd::Create(o) => create(cli, &store, o),
        ContextCmd::Ls(o) => ls(cli, &store, o),
        ContextCmd::Use(o) => use_context(&store, &o.name),
        ContextCmd::Inspect(o) => inspect(cli, &store, o),
        ContextCmd::Rm(o) => rm(cli, &store, o),
        ContextCmd::Export(o) => export(cli, &store, o),
        ContextCmd::Import(o) => import(&store, o),
    }
}

/// The `default` context, as the flags and variables make it.
fn default_ctx(cli: &Cli) -> Ctx {
    let host = cli
        .conn
        .host
        .clone()
        .or_else(|| env("HOST"))
        .unwrap_or_else(|| berth_api::client::DEFAULT_HOST.to_string());
    Ctx::new(
        DEFAULT,
        "Current DOCKER_HOST based configuration",
        &host,
        false,
    )
}

/// A context by name, `default` included, with its TLS files.
fn find(cli: &Cli, store: &Store, name: &str) -> Result<(Ctx, TlsFiles)> {
    if name == DEFAULT {
        let ctx = default_ctx(cli);
        let files = connection::resolve(&cli.conn, Some(DEFAULT))
            .ok()
            .and_then(|t| t.tls)
            .map(|t| {
                [("ca.pem", t.ca), ("cert.pem", t.cert), ("key.pem", t.key)]
                    .into_iter()
                    .filter_map(|(n, p)| Some((n.to_string(), std::fs::read(p?).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        return Ok((ctx, files));
    }
    let ctx = store.load(name)?;
    let files = store.tls_files(name);
    Ok((ctx, files))
}

fn create(cli: &Cli, store: &Store, o: &CreateOpts) -> Result<i32> {
    check_name(&o.name)?;
    if store.exists(&o.name) {
        bail!("context {:?} already exists", o.name);
    }
    let (ctx, files) = match (&o.docker, &o.from) {
        (Some(spec), _) => from_spec(&o.name, &o.description, spec)?,
        (None, from) => {
            let source = match from {
                Some(f) => f.clone(),
                None => connection::context_name(&cli.conn, cli.context.as_deref())?,
            };
            let (src, files) = find(cli, store, &source)?;
            let mut ctx = src.clone();
            ctx.meta["Name"] = json!(o.name);
            let description = if o.description.is_empty() && source != DEFAULT {
                src.description().to_string()
            } else {
                o.description.clone()
            };
            ctx.meta["Metadata"] = if description.is_empty() {
                json!({})
            } else {
                json!({ "Description": description })
            };
            (ctx, files)
        }
    };
    store.save(&ctx, &files)?;
    println!("{}", o.name);
    eprintln!("Successfully created context {:?}", o.name);
    Ok(0)
}

/// A context of `--docker "host=...,ca=...,cert=...,key=...,skip-tls-verify=..."`.
fn from_spec(name: &str, description: &str, spec: &str) -> Result<(Ctx, TlsFiles)> {
    let mut host = None;
    let mut skip = false;
    let mut files = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let Some((k, v)) = field.split_once('=') else {
            bail!("unable to create docker endpoint config: invalid field {field:?}: expected KEY=VALUE");
        };
        match k {
            "host" => host = Some(v.to_string()),
            "skip-tls-verify" => {
                skip = v
                    .parse()
                    .with_context(|| format!("invalid skip-tls-verify {v:?}"))?
            }
            "ca" | "cert" | "key" => {
                let path = expand_home(v);
                let data = std::fs::read(&path).with_context(|| {
                    format!(
                        "unable to create docker endpoint config: open {}",
                        path.display()
                    )
                })?;
                files.push((format!("{k}.pem"), data));
            }
            "from" => {}
            other => {
                bail!("unable to create docker endpoint config: unrecognized config key: {other}")
            }
        }
    }
    let host = host.unwrap_or_else(|| berth_api::client::DEFAULT_HOST.to_string());
    // Checked as a client would use it.
    berth_api::client_conn::Endpoint::parse(&host, None)
        .map_err(|e| anyhow::anyhow!("unable to create docker endpoint config: {e}"))?;
    files.sort_by_key(|(n, _)| TLS_FILES.iter().position(|f| f == n));
    Ok((Ctx::new(name, description, &host, skip), files))
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(rest),
        None => PathBuf::from(p),
    }
}

fn ls(cli: &Cli, store: &Store, o: &LsOpts) -> Result<i32> {
    let current = connection::context_name(&cli.conn, cli.context.as_deref())
        .unwrap_or_else(|_| DEFAULT.to_string());
    let mut all = vec![default_ctx(cli)];
    all.extend(store.list());
    // By name, `default` among them, as docker lists them.
    all.sort_by(|a, b| a.name().cmp(b.name()));
    if o.quiet {
        for c in &all {
            println!("{}", c.name());
        }
        return Ok(0);
    }
    let items: Vec<Value> = all
        .iter()
        .map(|c| {
            json!({
                "Name": c.name(),
                "Description": c.description(),
                "DockerEndpoint": c.host(),
                "Current": c.name() == current,
                "Error": "",
                "ContextType": "moby",
            })
        })
        .collect();
    let format = match o.format.as_deref() {
        Some("json") => {
            for it in &items {
                println!("{it}");
            }
            return Ok(0);
        }
        Some(f) => f.to_string(),
        None => "table {{.Name}}{{if .Current}} *{{end}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}".to_string(),
    };
    let list = crate::formatter::List {
        ctx: "*formatter.ClientContext",
        headers: &[
            ("Name", "NAME"),
            ("Description", "DESCRIPTION"),
            ("DockerEndpoint", "DOCKER ENDPOINT"),
            ("Error", "ERROR"),
        ],
        labels: None,
    };
    crate::formatter::print_items(&format, &items, &list)?;
    if env("HOST").is_some() && cli.conn.host.is_none() && cli.context.is_none() {
        eprintln!("Warning: DOCKER_HOST environment variable overrides the active context. To use a context, either set the global --context flag, or unset DOCKER_HOST environment variable.");
    }
    Ok(0)
}

fn use_context(store: &Store, name: &str) -> Result<i32> {
    if name != DEFAULT {
        store.load(name)?;
    }
    store.set_current(name)?;
    println!("{name}");
    eprintln!("Current context is now {name:?}");
    if env("HOST").is_some() {
        eprintln!("Warning: DOCKER_HOST environment variable overrides the active context. To use {name:?}, either set the global --context flag, or unset DOCKER_HOST environment variable.");
    }
    Ok(0)
}

fn inspect(cli: &Cli, store: &Store, o: &InspectOpts) -> Result<i32> {
    let names = if o.names.is_empty() {
        vec![connection::context_name(&cli.conn, cli.context.as_deref())?]
    } else {
        o.names.clone()
    };
    let mut docs = Vec::new();
    for name in &names {
        let (ctx, files) = find(cli, store, name)?;
        let (material, storage) = if name == DEFAULT {
            (
                json!({}),
                json!({"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"}),
            )
        } else {
            let material = if files.is_empty() {
                json!({})
            } else {
                json!({ ENDPOINT: files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>() })
            };
            let storage = json!({
                "MetadataPath": store.meta_dir(name).display().to_string(),
                "TLSPath": store.tls_dir(name).display().to_string(),
            });
            (material, storage)
        };
        // In docker's order (serde_json's maps sort their keys).
        #[derive(serde::Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Doc<'a> {
            name: &'a str,
            metadata: &'a Value,
            endpoints: &'a Value,
            #[serde(rename = "TLSMaterial")]
            tls_material: Value,
            storage: Value,
        }
        // The default context's description is for `ls` only.
        let empty = json!({});
        let doc = Doc {
            name: ctx.name(),
            metadata: if name == DEFAULT {
                &empty
            } else {
                &ctx.meta["Metadata"]
            },
            endpoints: &ctx.meta["Endpoints"],
            tls_material: material,
            storage,
        };
        // Go's encoder escapes <, > and & in strings.
        let text = serde_json::to_string(&doc)?
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026");
        docs.push(text.into_bytes());
    }
    let format = o.format.as_deref().unwrap_or("");
    if format.is_empty() {
        println!("{}", indent4(&docs)?);
        return Ok(0);
    }
    let (text, errors) = crate::formatter::inspect(format, &docs)?;
    print!("{text}");
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// The documents (compact JSON, keys in order) as a JSON array indented by four spaces, as
/// docker's inspect prints them.
fn indent4(docs: &[Vec<u8>]) -> Result<String> {
    let texts: Vec<String> = docs
        .iter()
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .collect();
    // Re-indented as text: parsing would sort the keys.
    Ok(reindent(&format!("[{}]", texts.join(","))))
}

/// Indents compact JSON text by four spaces a level (strings copied as they are).
fn reindent(compact: &str) -> String {
    let mut out = String::new();
    let mut level = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = compact.chars().peekable();
    let newline = |out: &mut String, level: usize| {
        out.push('\n');
        out.push_str(&"    ".repeat(level));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(c);
                    out.push(close);
                } else {
                    out.push(c);
                    level += 1;
                    newline(&mut out, level);
                }
            }
            '}' | ']' => {
                level = level.saturating_sub(1);
                newline(&mut out, level);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, level);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

fn rm(cli: &Cli, store: &Store, o: &RmOpts) -> Result<i32> {
    let current = store.current();
    let mut failed = Vec::new();
    for name in &o.names {
        let result = if name == DEFAULT {
            Err(anyhow::anyhow!("context \"default\" cannot be removed"))
        } else if !store.exists(name) {
            Err(anyhow::anyhow!("context {name:?} does not exist"))
        } else if current.as_deref() == Some(name.as_str()) && !o.force {
            Err(anyhow::anyhow!(
                "context {name:?} is in use, set -f flag to force remove"
            ))
        } else {
            store.remove(name).and_then(|()| {
                if current.as_deref() == Some(name.as_str()) {
                    store.set_current(DEFAULT)?;
                }
                Ok(())
            })
        };
        match result {
            Ok(()) => println!("{name}"),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    let _ = cli;
    if failed.is_empty() {
        return Ok(0);
    }
    Err(crate::status(1, failed.join("\n")))
}

fn export(cli: &Cli, store: &Store, o: &ExportOpts) -> Result<i32> {
    let (ctx, files) = find(cli, store, &o.name)?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], dir: bool| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_cksum();
        tar.append_data(&mut h, path, data)?;
        Ok(())
    };
    add("meta.json", &serde_json::to_vec(&ctx.meta)?, false)?;
    if !files.is_empty() {
        add("tls", &[], true)?;
        add(&format!("tls/{ENDPOINT}"), &[], true)?;
        for (name, data) in &files {
            add(&format!("tls/{ENDPOINT}/{name}"), data, false)?;
        }
    }
    let bytes = tar.into_inner()?;
    let file = o
        .file
        .clone()
        .unwrap_or_else(|| format!("{}.dockercontext", o.name));
    if file == "-" {
        std::io::stdout().write_all(&bytes)?;
    } else {
        std::fs::write(&file, &bytes).with_context(|| format!("writing {file}"))?;
        eprintln!("Written file {file:?}");
    }
    Ok(0)
}

fn import(store: &Store, o: &ImportOpts) -> Result<i32> {
    check_name(&o.name)?;
    if store.exists(&o.name) {
        bail!("context {:?} already exists", o.name);
    }
    let mut bytes = Vec::new();
    if o.file == "-" {
        std::io::stdin().read_to_end(&mut bytes)?;
    } else {
        bytes = std::fs::read(&o.file).with_context(|| format!("open {}", o.file))?;
    }
    // The docker CLI's exports end with the last file's data: no padding to a block, no
    // end-of-archive blocks. Zeros complete them.
    bytes.resize(bytes.len().div_ceil(512) * 512 + 1024, 0);
    let mut meta = None;
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(bytes.as_slice());
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if path == "meta.json" {
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            meta = Some(serde_json::from_slice::<Value>(&data).context("invalid meta.json")?);
        } else if let Some(name) = path.strip_prefix(&format!("tls/{ENDPOINT}/")) {
            if TLS_FILES.contains(&name) {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                files.push((name.to_string(), data));
            }
        }
    }
    let Some(mut meta) = meta.filter(Value::is_object) else {
        bail!("invalid context: no metadata found");
    };
    meta["Name"] = json!(o.name);
    store.save(&context::Ctx { meta }, &files)?;
    println!("{}", o.name);
    eprintln!("Successfully imported context {:?}", o.name);
    Ok(0)
}

/// `berth system dial-stdio`: this process's stdin and stdout become a connection to the daemon
/// (the far end of `-H ssh://`). Stdin's end half-closes the connection; the daemon's end of
/// it ends the command.
pub async fn dial_stdio(host: &str) -> Result<i32> {
    let tls = connection::tls_for(host);
    let client = berth_api::client::Client::with_tls(host, tls.as_ref())?;
    let stream = client.connect().await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut writer).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut writer).await;
    });
    let mut stdout = tokio::io::stdout();
    tokio::io::copy(&mut reader, &mut stdout).await?;
    tokio::io::AsyncWriteExt::flush(&mut stdout).await?;
    Ok(0)
}
