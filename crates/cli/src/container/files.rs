//! Container filesystem commands: `cp`, `export` and `commit`.

use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Context as _, Result};
use berth_api::client::{empty_body, encode_query, BodyStream};
use hyper::Method;
use serde_json::Value;

use crate::connect;

use super::{CommitOpts, CpOpts, ExportOpts};

fn split_cp_arg(s: &str) -> (Option<&str>, &str) {
    if s.starts_with('/') || s.starts_with('.') {
        return (None, s);
    }
    match s.split_once(':') {
        Some((c, p)) if !c.is_empty() && !c.contains('/') => (Some(c), p),
        _ => (None, s),
    }
}

pub async fn cp(host: &str, o: &CpOpts) -> Result<i32> {
    let client = connect(host).await?;
    match (split_cp_arg(&o.src), split_cp_arg(&o.dest)) {
        ((Some(c), path), (None, dest)) => {
            let resp = client
                .request(
                    Method::GET,
                    &format!("/containers/{c}/archive"),
                    &encode_query(&[("path", path)]),
                    &[],
                    empty_body(),
                )
                .await?;
            let mut body = BodyStream::new(resp);
            if dest == "-" {
                let mut out = std::io::stdout().lock();
                while let Some(chunk) = body.chunk().await? {
                    out.write_all(&chunk)?;
                }
                return Ok(0);
            }
            // extract with tar(1): entries are relative to the source's basename
            let dest_path = std::path::Path::new(dest);
            let (dir, rename) = if dest_path.is_dir() {
                (dest_path.to_path_buf(), None)
            } else {
                let parent = dest_path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
                    .to_path_buf();
                (parent, dest_path.file_name().map(|f| f.to_os_string()))
            };
            let tmp = tempdir_in(&dir)?;
            let mut child = std::process::Command::new("tar")
                .arg("-x")
                .arg("-C")
                .arg(&tmp)
                .stdin(std::process::Stdio::piped())
                .spawn()
                .context("run tar")?;
            {
                let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("tar stdin"))?;
                while let Some(chunk) = body.chunk().await? {
                    stdin.write_all(&chunk)?;
                }
            }
            let st = child.wait()?;
            if !st.success() {
                let _ = std::fs::remove_dir_all(&tmp);
                bail!("extracting the archive failed");
            }
            let base = std::path::Path::new(path.trim_end_matches('/'))
                .file_name()
                .map(|f| f.to_os_string())
                .unwrap_or_else(|| ".".into());
            let target = dir.join(rename.unwrap_or_else(|| base.clone()));
            if target.is_dir() && tmp.join(&base).is_dir() {
                // merge: copy contents over
                let st = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", tmp.join(&base).display()))
                    .arg(&target)
                    .status()?;
                if !st.success() {
                    bail!("copy failed");
                }
            } else {
                std::fs::rename(tmp.join(&base), &target)?;
            }
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(0)
        }
        ((None, src), (Some(c), path)) => {
            // stat the destination: a directory receives the source under its own name
            let stat = client
                .send_raw(
                    Method::HEAD,
                    &format!(
                        "{}?{}",
                        client.versioned(&format!("/containers/{c}/archive")),
                        encode_query(&[("path", path)])
                    ),
                    &[],
                    empty_body(),
                )
                .await?;
            let (dir, name) = if stat.status().is_success() {
                let is_dir = stat
                    .headers()
                    .get("X-Docker-Container-Path-Stat")
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD.decode(h).ok()
                    })
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                    .and_then(|v| v["mode"].as_u64())
                    .is_some_and(|m| m & (1 << 31) != 0);
                if is_dir {
                    (path.to_string(), None)
                } else {
                    split_parent(path)
                }
            } else if stat.status().as_u16() == 404 {
                split_parent(path)
            } else {
                return Err(berth_api::client::error_from(stat).await.into());
            };
            let src_path = std::path::Path::new(src);
            let src_dir = src_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let src_base = src_path
                .file_name()
                .ok_or_else(|| anyhow!("invalid source path {src}"))?;
            let mut cmd = tokio::process::Command::new("tar");
            cmd.arg("-c").arg("-C").arg(src_dir);
            if let Some(n) = &name {
                cmd.arg(format!(
                    "--transform=s|^{}|{}|",
                    src_base.to_string_lossy(),
                    n
                ));
            }
            cmd.arg(src_base).stdout(std::process::Stdio::piped());
            let mut child = cmd.spawn().context("run tar")?;
            let stdout = child.stdout.take().ok_or_else(|| anyhow!("tar stdout"))?;
            client
                .request(
                    Method::PUT,
                    &format!("/containers/{c}/archive"),
                    &encode_query(&[("noOverwriteDirNonDir", "true"), ("path", &dir)]),
                    &[("Content-Type", "text/plain".to_string())],
                    berth_api::client::reader_body(stdout),
                )
                .await?;
            child.wait().await?;
            Ok(0)
        }
        _ => bail!("must specify at least one container source"),
    }
}

fn split_parent(path: &str) -> (String, Option<String>) {
    let p = std::path::Path::new(path);
    let parent = p
        .parent()
        .map(|d| d.to_string_lossy().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".into());
    (
        parent,
        p.file_name().map(|f| f.to_string_lossy().to_string()),
    )
}

fn tempdir_in(dir: &std::path::Path) -> Result<std::path::PathBuf> {
    for i in 0..100 {
        let p = dir.join(format!(".berth-cp-{}-{i}", std::process::id()));
        if std::fs::create_dir(&p).is_ok() {
            return Ok(p);
        }
    }
    bail!("cannot create a temporary directory in {}", dir.display())
}

pub async fn export(host: &str, o: &ExportOpts) -> Result<i32> {
    let client = connect(host).await?;
    if o.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = client
        .request(
            Method::GET,
            &format!("/containers/{}/export", o.container),
            "",
            &[],
            empty_body(),
        )
        .await?;
    crate::image::body_to_output(resp, o.output.as_deref()).await?;
    Ok(0)
}

pub async fn commit(host: &str, o: &CommitOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut q: Vec<(&str, String)> = vec![("author", o.author.clone().unwrap_or_default())];
    for c in &o.change {
        q.push(("changes", c.clone()));
    }
    q.push(("comment", o.message.clone().unwrap_or_default()));
    q.push(("container", o.container.clone()));
    if !o.pause {
        q.push(("pause", "0".into()));
    }
    if let Some(r) = &o.repository {
        let (repo, tag) = crate::image::split_ref(r);
        q.push(("repo", repo));
        q.push(("tag", tag.unwrap_or_default()));
    }
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "Id")]
        id: String,
    }
    let r: Id = client
        .json(Method::POST, "/commit", &encode_query(&q), None::<&()>)
        .await?;
    println!("{}", r.id);
    Ok(0)
}
