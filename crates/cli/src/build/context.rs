//! The build context as the docker CLI sends it: a directory packed into a tar (honouring its
//! ignore file, the Dockerfile and the ignore file always in), stdin as it comes (a tar,
//! maybe compressed, or a lone Dockerfile), or a URL for the daemon to fetch.
//!
//! A directory's tar is written by a thread into a pipe whose other end is the request body,
//! so the context is never held whole in memory.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use berth_api::client::{empty_body, reader_body, Body};
use berth_build::context::pack_dir;
use berth_build::ignore::{ignore_file_candidates, read_dockerignore, Matcher};
use tokio::sync::oneshot;

/// What is sent: the body, the `dockerfile=` and `remote=` values, and (for a context the
/// CLI packs) the size of the tar once it is all written.
pub struct Prepared {
    pub body: Body,
    pub dockerfile: Option<String>,
    pub remote: Option<String>,
    pub sent: Option<oneshot::Receiver<io::Result<u64>>>,
}

/// Whether `s` is a context the daemon fetches (docker's `urlutil.IsURL`/`IsGitURL`).
fn is_url(s: &str) -> bool {
    ["http://", "https://", "git://", "github.com/", "git@"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Go's text of an OS error (`no such file or directory`).
fn go_error(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => s,
    }
}

/// `filepath.Abs`: joined to the working directory and cleaned, without resolving links.
fn absolute(p: &str) -> Result<PathBuf> {
    let joined = std::env::current_dir()
        .context("unable to get the working directory")?
        .join(p);
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

/// `filepath.EvalSymlinks`, with its error: the first path on the way that cannot be
/// `lstat`ed.
fn eval_symlinks(p: &Path) -> std::result::Result<PathBuf, String> {
    match std::fs::canonicalize(p) {
        Ok(r) => Ok(r),
        Err(e) => {
            let mut prefix = PathBuf::new();
            for c in p.components() {
                prefix.push(c);
                if let Err(e) = std::fs::metadata(&prefix) {
                    return Err(format!("lstat {}: {}", prefix.display(), go_error(&e)));
                }
            }
            Err(format!("lstat {}: {}", p.display(), go_error(&e)))
        }
    }
}

/// The context directory and the Dockerfile (`None`: from stdin), as docker's
/// `GetContextFromLocalDir` finds them.
fn local_dir(dir: &str, file: Option<&str>) -> Result<(PathBuf, Option<PathBuf>)> {
    let abs = absolute(dir)?;
    let ctx = eval_symlinks(&abs)
        .map_err(|e| anyhow!("unable to evaluate symlinks in context path: {e}"))?;
    let st = std::fs::symlink_metadata(&ctx).map_err(|e| {
        anyhow!(
            "unable to stat context directory {:?}: lstat {}: {}",
            ctx.display().to_string(),
            ctx.display(),
            go_error(&e)
        )
    })?;
    if !st.is_dir() {
        bail!("context must be a directory: {}", ctx.display());
    }
    let dockerfile = match file {
        Some("-") => return Ok((ctx, None)),
        Some(f) => absolute(f)?,
        None => {
            let default = ctx.join("Dockerfile");
            let lower = ctx.join("dockerfile");
            if std::fs::symlink_metadata(&default).is_err()
                && std::fs::symlink_metadata(&lower).is_ok()
            {
                lower
            } else {
                default
            }
        }
    };
    let dockerfile = eval_symlinks(&dockerfile)
        .map_err(|e| anyhow!("unable to evaluate symlinks in Dockerfile path: {e}"))?;
    Ok((ctx, Some(dockerfile)))
}

/// A name for a Dockerfile the context did not have (`.dockerfile.` and 20 hex digits).
fn random_name() -> String {
    let mut bytes = [0u8; 10];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = t ^ u128::from(std::process::id()) << 64;
        bytes.copy_from_slice(&seed.to_le_bytes()[..10]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(".dockerfile.{hex}")
}

/// The ignore file that applies (its name as given to the daemon, its text), if any.
fn ignore_file(
    ctx: &Path,
    rel_dockerfile: Option<&str>,
    outside: Option<&Path>,
) -> Option<(String, String)> {
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    if let Some(rel) = rel_dockerfile {
        for c in ignore_file_candidates(rel) {
            candidates.push((c.clone(), ctx.join(&c)));
        }
    } else {
        if let Some(df) = outside {
            let mut own = df.as_os_str().to_os_string();
            own.push(".dockerignore");
            candidates.push((".dockerignore".into(), PathBuf::from(own)));
        }
        candidates.push((".dockerignore".into(), ctx.join(".dockerignore")));
    }
    candidates
        .into_iter()
        .find_map(|(name, path)| std::fs::read_to_string(path).ok().map(|t| (name, t)))
}

/// Packs the context directory `dir` into the body; the Dockerfile is `file` (`-f`).
pub fn directory(dir: &str, file: Option<&str>) -> Result<Prepared> {
    let (ctx, dockerfile) =
        local_dir(dir, file).map_err(|e| anyhow!("unable to prepare context: {e:#}"))?;
    // The Dockerfile inside the context (relative path), or its text to add.
    let (rel, added) = match &dockerfile {
        Some(df) => match df.strip_prefix(&ctx) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                (Some(rel.to_string_lossy().into_owned()), None)
            }
            _ => {
                let text = std::fs::read(df)
                    .map_err(|e| anyhow!("unable to open Dockerfile: {}", go_error(&e)))?;
                (None, Some(text))
            }
        },
        None => {
            let mut text = Vec::new();
            io::stdin()
                .read_to_end(&mut text)
                .context("reading the Dockerfile from stdin")?;
            (None, Some(text))
        }
    };
    let outside = dockerfile.as_deref().filter(|_| rel.is_none());
    let ignore = ignore_file(&ctx, rel.as_deref(), outside);
    let mut patterns = ignore
        .as_ref()
        .map(|(_, text)| read_dockerignore(text))
        .unwrap_or_default();
    let check = Matcher::new(&patterns).map_err(|e| anyhow!("{e}"))?;
    // The Dockerfile and the ignore file always go (docker's TrimBuildFilesFromExcludes).
    if let Some((name, _)) = &ignore {
        if check.matches(name) {
            patterns.push(format!("!{name}"));
        }
    }
    if let Some(rel) = &rel {
        if check.matches(rel) {
            patterns.push(format!("!{rel}"));
        }
    }
    let mut extra = Vec::new();
    let name = match (rel, added) {
        (Some(rel), _) => rel,
        (None, text) => {
            // As docker's AddDockerfileToBuildContext: the Dockerfile under a new name, and a
            // .dockerignore naming it so COPY does not see it.
            let name = random_name();
            let mut ignore_text = match &ignore {
                Some((_, t)) => t.clone(),
                None => ".dockerignore".to_string(),
            };
            ignore_text.push_str(&format!("\n{name}\n"));
            patterns.push(".dockerignore".into());
            extra.push((".dockerignore".to_string(), ignore_text.into_bytes()));
            extra.push((name.clone(), text.unwrap_or_default()));
            name
        }
    };
    let matcher = Matcher::new(&patterns).map_err(|e| anyhow!("{e}"))?;
    let (body, sent) = spawn_packer(ctx, matcher, extra)?;
    Ok(Prepared {
        body,
        dockerfile: Some(name),
        remote: None,
        sent: Some(sent),
    })
}

/// Counts what goes through.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file entry written by hand (so the archive stays open for [`pack_dir`]'s entries).
fn write_entry(w: &mut impl Write, name: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name)?;
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    header.set_mtime(now);
    header.set_cksum();
    w.write_all(header.as_bytes())?;
    w.write_all(data)?;
    let pad = (512 - data.len() % 512) % 512;
    w.write_all(&vec![0u8; pad])
}

/// A thread writes the tar into a pipe read by the body; the receiver gets its size.
fn spawn_packer(
    dir: PathBuf,
    matcher: Matcher,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<(Body, oneshot::Receiver<io::Result<u64>>)> {
    let (read, write): (OwnedFd, OwnedFd) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("context".into())
        .spawn(move || {
            let mut w = Counting {
                inner: io::BufWriter::with_capacity(64 * 1024, std::fs::File::from(write)),
                count: 0,
            };
            let result = (|| {
                for (name, data) in &extra {
                    write_entry(&mut w, name, data)?;
                }
                pack_dir(&dir, &matcher, &mut w).map_err(io::Error::other)?;
                w.flush()?;
                Ok(w.count)
            })();
            drop(w);
            let _ = tx.send(result);
        })
        .context("starting the context thread")?;
    let file = tokio::fs::File::from_std(std::fs::File::from(read));
    Ok((reader_body(file), rx))
}

/// The context from stdin, sent as it comes; `file` names the Dockerfile in it.
pub fn stdin(file: Option<&str>) -> Result<Prepared> {
    if file == Some("-") {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    Ok(Prepared {
        body: reader_body(tokio::io::stdin()),
        dockerfile: file.map(str::to_string),
        remote: None,
        sent: None,
    })
}

/// The context for `PATH | URL | -`.
pub fn prepare(path: &str, file: Option<&str>) -> Result<Prepared> {
    if path == "-" {
        return stdin(file);
    }
    if std::fs::metadata(path).is_ok() {
        return directory(path, file);
    }
    if is_url(path) {
        return Ok(Prepared {
            body: empty_body(),
            dockerfile: file.map(str::to_string),
            remote: Some(path.to_string()),
            sent: None,
        });
    }
    bail!("unable to prepare context: path {path:?} not found")
}
