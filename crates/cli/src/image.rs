//! Image commands: images, pull, push, tag, rmi, import, save, load, login, logout, history.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context as _, Result};
use base64::Engine;
use berth_api::client::{empty_body, encode_query, reader_body, BodyStream, Client};
use berth_registry::credentials::{self, Credential, Credentials};
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use crate::fmt::{ellipsis, human_size, short_id, since_unix};
use crate::{connect, status};

#[derive(Args, Debug)]
pub struct ImagesOpts {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    /// Repository (and tag) to list
    reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullOpts {
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// Download all tagged images in the repository
    #[arg(short, long = "all-tags")]
    all_tags: bool,
    image: String,
}

#[derive(Args, Debug)]
pub struct PushOpts {
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Push all tags of an image to the repository
    #[arg(short, long = "all-tags")]
    all_tags: bool,
    image: String,
}

#[derive(Args, Debug)]
pub struct TagOpts {
    source: String,
    target: String,
}

#[derive(Args, Debug)]
pub struct RmiOpts {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportOpts {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    /// A file, a URL or - for stdin
    file: String,
    reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct SaveOpts {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadOpts {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct LoginOpts {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password or Personal Access Token (PAT)
    #[arg(short, long)]
    password: Option<String>,
    /// Take the Password or Personal Access Token (PAT) from stdin
    #[arg(long = "password-stdin")]
    password_stdin: bool,
    server: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogoutOpts {
    server: Option<String>,
}

#[derive(Args, Debug)]
pub struct HistoryOpts {
    /// Print sizes and dates in human readable format
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format output using a custom template
    #[arg(long)]
    format: Option<String>,
    image: String,
}

// --- references ---------------------------------------------------------------------------------

/// A parsed reference: registry domain, path (`library/bb`), tag, digest.
#[derive(Debug, Clone)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Reference {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => {
                (d.to_string(), p.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Reference {
            domain,
            path,
            tag,
            digest,
        }
    }

    /// `docker.io/library/bb`
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `bb`, `localhost:5000/bb`
    pub fn familiar_name(&self) -> String {
        if self.domain == "docker.io" {
            self.path
                .strip_prefix("library/")
                .unwrap_or(&self.path)
                .to_string()
        } else {
            self.name()
        }
    }

    /// The tag or digest the API takes (`latest` by default).
    pub fn api_tag(&self) -> String {
        self.digest
            .clone()
            .or_else(|| self.tag.clone())
            .unwrap_or_else(|| "latest".into())
    }

    fn suffix(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => format!("@{d}"),
            (Some(t), None) => format!(":{t}"),
            (None, None) => ":latest".into(),
        }
    }
}

/// `bb` → `bb:latest` (familiar form, tag added).
pub fn familiar_with_tag(s: &str) -> String {
    let r = Reference::parse(s);
    format!("{}{}", r.familiar_name(), r.suffix())
}

/// (normalized repository, tag) for tag and commit.
pub fn split_ref(s: &str) -> (String, Option<String>) {
    let r = Reference::parse(s);
    (
        r.name(),
        Some(r.tag.clone().unwrap_or_else(|| "latest".into())),
    )
}

/// `X-Registry-Auth` for the registry of `r`: base64url JSON, `e30=` (`{}`) without a saved
/// credential.
fn registry_auth(r: &Reference) -> String {
    let creds = Credentials::load(&credentials::default_path()).unwrap_or_default();
    let engine = base64::engine::general_purpose::URL_SAFE;
    match creds.get(&r.domain) {
        Some(c) => {
            let server = if r.domain == "docker.io" {
                "https://index.docker.io/v1/".to_string()
            } else {
                r.domain.clone()
            };
            engine.encode(
                json!({"username": c.username, "password": c.password, "serveraddress": server})
                    .to_string(),
            )
        }
        None => engine.encode("{}"),
    }
}

/// Pulls `image`, rendering progress to stderr (for run) or stdout.
pub async fn pull_image(
    client: &Client,
    image: &str,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> Result<()> {
    let r = Reference::parse(image);
    let mut q = vec![("fromImage", r.name()), ("tag", r.api_tag())];
    if let Some(p) = platform {
        q.push(("platform", p.to_string()));
    }
    let resp = client
        .request(
            Method::POST,
            "/images/create",
            &encode_query(&q),
            &[("X-Registry-Auth", registry_auth(&r))],
            empty_body(),
        )
        .await?;
    let mut body = BodyStream::new(resp);
    if quiet {
        progress_sink(&mut body).await?;
    } else if to_stderr {
        let tty = std::io::stderr().is_terminal();
        crate::progress::display(&mut body, &mut std::io::stderr(), tty).await?;
    } else {
        let tty = std::io::stdout().is_terminal();
        crate::progress::display(&mut body, &mut std::io::stdout(), tty).await?;
    }
    Ok(())
}

async fn progress_sink(body: &mut BodyStream) -> Result<()> {
    let mut sink = std::io::sink();
    crate::progress::display(body, &mut sink, false).await?;
    Ok(())
}

pub async fn pull_cmd(host: &str, o: &PullOpts) -> Result<i32> {
    let client = connect(host).await?;
    let r = Reference::parse(&o.image);
    if o.quiet {
        pull_image(&client, &o.image, o.platform.as_deref(), true, false).await?;
    } else {
        if r.tag.is_none() && r.digest.is_none() {
            println!("Using default tag: latest");
        }
        pull_image(&client, &o.image, o.platform.as_deref(), false, false).await?;
    }
    println!("{}{}", r.name(), r.suffix());
    Ok(0)
}

pub async fn push(host: &str, o: &PushOpts) -> Result<i32> {
    let client = connect(host).await?;
    let r = Reference::parse(&o.image);
    let q = if o.all_tags {
        String::new()
    } else {
        if r.tag.is_none() {
            println!("Using default tag: latest");
        }
        encode_query(&[("tag", r.tag.clone().unwrap_or_else(|| "latest".into()))])
    };
    let resp = client
        .request(
            Method::POST,
            &format!("/images/{}/push", r.familiar_name()),
            &q,
            &[("X-Registry-Auth", registry_auth(&r))],
            empty_body(),
        )
        .await?;
    let mut body = BodyStream::new(resp);
    if o.quiet {
        progress_sink(&mut body).await?;
        println!("{}{}", r.name(), r.suffix());
    } else {
        let tty = std::io::stdout().is_terminal();
        crate::progress::display(&mut body, &mut std::io::stdout(), tty).await?;
    }
    Ok(0)
}

pub async fn tag(host: &str, o: &TagOpts) -> Result<i32> {
    let client = connect(host).await?;
    let (repo, tag) = split_ref(&o.target);
    client
        .call(
            Method::POST,
            &format!("/images/{}/tag", o.source),
            &encode_query(&[("repo", repo), ("tag", tag.unwrap_or_default())]),
        )
        .await?;
    Ok(0)
}

pub async fn rmi(host: &str, o: &RmiOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut q = Vec::new();
    if o.force {
        q.push(("force", "1"));
    }
    if o.no_prune {
        q.push(("noprune", "1"));
    }
    let q = encode_query(&q);
    let mut failed = false;
    for img in &o.images {
        match client
            .json::<Vec<Value>>(Method::DELETE, &format!("/images/{img}"), &q, None::<&()>)
            .await
        {
            Ok(items) => {
                for it in items {
                    if let Some(u) = it["Untagged"].as_str() {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = it["Deleted"].as_str() {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(status(1, None));
    }
    Ok(0)
}

fn image_rows(img: &Value, o: &ImagesOpts) -> Vec<Value> {
    let id = img["Id"].as_str().unwrap_or("");
    let id_shown = if o.no_trunc {
        id.to_string()
    } else {
        short_id(id)
    };
    let created = img["Created"].as_i64().unwrap_or(0);
    let size = img["Size"].as_f64().unwrap_or(0.0);
    let tags: Vec<String> = img["RepoTags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let digests: Vec<String> = img["RepoDigests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let containers = match img["Containers"].as_i64() {
        Some(n) if n >= 0 => n.to_string(),
        _ => "N/A".into(),
    };
    let created_at = {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(created.max(0) as u64);
        let s = humantime::format_rfc3339_seconds(t).to_string();
        format!("{} +0000 UTC", s.trim_end_matches('Z').replace('T', " "))
    };
    let shared = match img["SharedSize"].as_f64() {
        Some(n) if n >= 0.0 => human_size(n),
        _ => "N/A".into(),
    };
    let virtual_size = human_size(img["VirtualSize"].as_f64().unwrap_or(size));
    let row = |repo: &str, tag: &str, digest: &str| {
        json!({
            "Containers": containers,
            "CreatedAt": created_at,
            "CreatedSince": since_unix(created),
            "Digest": digest,
            "ID": id_shown,
            "Repository": repo,
            "SharedSize": shared,
            "Size": human_size(size),
            "Tag": tag,
            "UniqueSize": "N/A",
            "VirtualSize": virtual_size,
        })
    };
    let digest_for = |repo: &str| {
        digests
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, dg)| dg.to_string())
            })
            .unwrap_or_else(|| "<none>".into())
    };
    let mut rows = Vec::new();
    for t in &tags {
        let (repo, tag) = match t.rfind(':') {
            Some(i) if !t[i..].contains('/') => (&t[..i], &t[i + 1..]),
            _ => (t.as_str(), "<none>"),
        };
        if repo == "<none>" && tag == "<none>" {
            continue;
        }
        rows.push(row(repo, tag, &digest_for(repo)));
    }
    if rows.is_empty() {
        match digests.first().and_then(|d| d.split_once('@')) {
            Some((repo, dg)) if repo != "<none>" => rows.push(row(repo, "<none>", dg)),
            _ => rows.push(row("<none>", "<none>", "<none>")),
        }
    }
    rows
}

pub async fn images(host: &str, o: &ImagesOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut filters = o.filter.clone();
    if let Some(r) = &o.reference {
        filters.push(format!("reference={r}"));
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    if o.all {
        q.push(("all", "1".into()));
    }
    if let Some(f) = crate::container::filters_query(&filters)? {
        q.push(("filters", f));
    }
    let list: Vec<Value> = client.get_json("/images/json", &encode_query(&q)).await?;
    if o.quiet {
        let mut seen = std::collections::HashSet::new();
        for img in &list {
            let id = img["Id"].as_str().unwrap_or("");
            let shown = if o.no_trunc {
                id.to_string()
            } else {
                short_id(id)
            };
            if seen.insert(shown.clone()) {
                println!("{shown}");
            }
        }
        return Ok(0);
    }
    let rows: Vec<Value> = list.iter().flat_map(|i| image_rows(i, o)).collect();
    let format = o.format.clone().unwrap_or_else(|| {
        if o.digests {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                .into()
        } else {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into()
        }
    });
    crate::formatter::print_items(
        &format,
        &rows,
        &crate::formatter::List {
            ctx: "*formatter.ImageContext",
            headers: &[
                ("Repository", "REPOSITORY"),
                ("Tag", "TAG"),
                ("Digest", "DIGEST"),
                ("ID", "IMAGE ID"),
                ("CreatedSince", "CREATED"),
                ("CreatedAt", "CREATED AT"),
                ("Size", "SIZE"),
                ("Containers", "CONTAINERS"),
                ("SharedSize", "SHARED SIZE"),
                ("UniqueSize", "UNIQUE SIZE"),
                ("VirtualSize", "VIRTUAL SIZE"),
            ],
            labels: None,
        },
    )?;
    Ok(0)
}

pub async fn import(host: &str, o: &ImportOpts) -> Result<i32> {
    let client = connect(host).await?;
    let is_url = o.file.starts_with("http://") || o.file.starts_with("https://");
    let mut q: Vec<(&str, String)> =
        vec![("fromSrc", if is_url { o.file.clone() } else { "-".into() })];
    if let Some(r) = &o.reference {
        q.push(("repo", r.clone()));
    }
    q.push(("tag", String::new()));
    q.push(("message", o.message.clone().unwrap_or_default()));
    if let Some(p) = &o.platform {
        q.push(("platform", p.clone()));
    }
    for c in &o.change {
        q.push(("changes", c.clone()));
    }
    let body = if is_url {
        empty_body()
    } else if o.file == "-" {
        reader_body(tokio::io::stdin())
    } else {
        let f = tokio::fs::File::open(&o.file)
            .await
            .with_context(|| format!("open {}", o.file))?;
        reader_body(f)
    };
    let resp = client
        .request(Method::POST, "/images/create", &encode_query(&q), &[], body)
        .await?;
    let mut body = BodyStream::new(resp);
    let tty = std::io::stdout().is_terminal();
    crate::progress::display(&mut body, &mut std::io::stdout(), tty).await?;
    Ok(0)
}

/// Writes a response body to `path` (or stdout).
pub async fn body_to_output(
    resp: hyper::Response<hyper::body::Incoming>,
    path: Option<&str>,
) -> Result<()> {
    let mut body = BodyStream::new(resp);
    let mut out: Box<dyn Write> = match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {p}"))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    while let Some(chunk) = body.chunk().await? {
        out.write_all(&chunk)?;
    }
    out.flush()?;
    Ok(())
}

pub async fn save(host: &str, o: &SaveOpts) -> Result<i32> {
    let client = connect(host).await?;
    if o.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let q: Vec<(&str, &String)> = o.images.iter().map(|i| ("names", i)).collect();
    let resp = client
        .request(
            Method::GET,
            "/images/get",
            &encode_query(&q),
            &[],
            empty_body(),
        )
        .await?;
    body_to_output(resp, o.output.as_deref()).await?;
    Ok(0)
}

pub async fn load(host: &str, o: &LoadOpts) -> Result<i32> {
    let client = connect(host).await?;
    let body = match &o.input {
        Some(p) => reader_body(
            tokio::fs::File::open(p)
                .await
                .with_context(|| format!("open {p}"))?,
        ),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            reader_body(tokio::io::stdin())
        }
    };
    let tty = std::io::stdout().is_terminal();
    let quiet = o.quiet || !tty;
    let resp = client
        .request(
            Method::POST,
            "/images/load",
            &encode_query(&[("quiet", if quiet { "1" } else { "0" })]),
            &[("Content-Type", "application/x-tar".to_string())],
            body,
        )
        .await?;
    let mut body = BodyStream::new(resp);
    crate::progress::display(&mut body, &mut std::io::stdout(), tty).await?;
    Ok(0)
}

fn read_password_prompt() -> Result<String> {
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    let raw = if std::io::stdin().is_terminal() {
        crate::term::RawMode::enable().ok()
    } else {
        None
    };
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while std::io::stdin().read(&mut b)? == 1 {
        if b[0] == b'\n' || b[0] == b'\r' {
            break;
        }
        if b[0] == 3 {
            drop(raw);
            bail!("interrupted");
        }
        line.push(b[0]);
    }
    drop(raw);
    eprintln!();
    Ok(String::from_utf8_lossy(&line).to_string())
}

pub async fn login(host: &str, o: &LoginOpts) -> Result<i32> {
    let client = connect(host).await?;
    let server = o.server.clone().unwrap_or_else(|| "docker.io".into());
    let host_key = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    let host_key = if host_key == "index.docker.io" {
        "docker.io".to_string()
    } else {
        host_key
    };
    let username = match &o.username {
        Some(u) => u.clone(),
        None => {
            eprint!("Username: ");
            let _ = std::io::stderr().flush();
            let mut l = String::new();
            std::io::stdin().read_line(&mut l)?;
            l.trim().to_string()
        }
    };
    let password = if o.password_stdin {
        if o.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches('\n').trim_end_matches('\r').to_string()
    } else if let Some(p) = &o.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else {
        read_password_prompt()?
    };
    if username.is_empty() {
        bail!("Username: username is required");
    }
    if password.is_empty() {
        bail!("Error: Password Required");
    }
    let serveraddress = if host_key == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        host_key.clone()
    };
    let resp: Value = client
        .json(
            Method::POST,
            "/auth",
            "",
            Some(&json!({"username": username, "password": password, "serveraddress": serveraddress})),
        )
        .await?;
    let path = credentials::default_path();
    let mut creds = Credentials::load(&path)?;
    let token = resp["IdentityToken"].as_str().unwrap_or("");
    creds.set(
        &host_key,
        &Credential {
            username: username.clone(),
            password: if token.is_empty() {
                password
            } else {
                token.to_string()
            },
        },
    );
    creds.save(&path)?;
    println!("{}", resp["Status"].as_str().unwrap_or("Login Succeeded"));
    Ok(0)
}

pub async fn logout(o: &LogoutOpts) -> Result<i32> {
    let server = o.server.clone().unwrap_or_else(|| "docker.io".into());
    let key = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let path = credentials::default_path();
    let mut creds = Credentials::load(&path)?;
    let shown = if key == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        key.clone()
    };
    if creds.remove(&key) {
        creds.save(&path)?;
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(0)
}

pub async fn history(host: &str, o: &HistoryOpts) -> Result<i32> {
    let client = connect(host).await?;
    let list: Vec<Value> = client
        .get_json(&format!("/images/{}/history", o.image), "")
        .await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|h| {
            let id = h["Id"].as_str().unwrap_or("");
            let id = if id == "<missing>" || id.is_empty() {
                "<missing>".to_string()
            } else if o.no_trunc {
                id.to_string()
            } else {
                short_id(id)
            };
            let by = h["CreatedBy"].as_str().unwrap_or("").replace('\t', " ");
            let by = if o.no_trunc { by } else { ellipsis(&by, 45) };
            json!({
                "ID": id,
                "CreatedSince": since_unix(h["Created"].as_i64().unwrap_or(0)),
                "CreatedBy": by,
                "Size": human_size(h["Size"].as_f64().unwrap_or(0.0)),
                "Comment": h["Comment"].as_str().unwrap_or(""),
            })
        })
        .collect();
    let format = if o.quiet {
        "{{.ID}}".to_string()
    } else {
        o.format.clone().unwrap_or_else(|| {
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into()
        })
    };
    crate::formatter::print_items(
        &format,
        &rows,
        &crate::formatter::List {
            ctx: "*formatter.historyContext",
            headers: &[
                ("ID", "IMAGE"),
                ("CreatedSince", "CREATED"),
                ("CreatedBy", "CREATED BY"),
                ("Size", "SIZE"),
                ("Comment", "COMMENT"),
            ],
            labels: None,
        },
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("bb");
        assert_eq!(r.name(), "docker.io/library/bb");
        assert_eq!(r.api_tag(), "latest");
        let r = Reference::parse("localhost:5000/bb:1");
        assert_eq!(r.name(), "localhost:5000/bb");
        assert_eq!(r.familiar_name(), "localhost:5000/bb");
        assert_eq!(r.api_tag(), "1");
        assert_eq!(familiar_with_tag("docker.io/library/bb"), "bb:latest");
        assert_eq!(split_ref("w1img:snap").0, "docker.io/library/w1img");
    }
}
