//! `ADD <url>`: the file fetched over HTTP(S) into a directory of the build's (removed when the
//! build ends), hashed as it arrives, with the server's `Last-Modified` as its time.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use berth_build::solver::{BackendError, Download};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::EngineBackend;

/// How long a server may take to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl EngineBackend<'_> {
    pub(super) fn download(&self, url: &str) -> Result<Download, BackendError> {
        let file_name = file_name(url).ok_or_else(|| {
            BackendError::new(format!("cannot determine filename from url: {url}"))
        })?;
        let dir = self
            .engine
            .images
            .store
            .tmp_dir()
            .join(super::scratch_name("download"));
        std::fs::create_dir_all(&dir).map_err(|e| BackendError::new(e.to_string()))?;
        if let Ok(mut dirs) = self.temp_dirs.lock() {
            dirs.push(dir.clone());
        }
        let path = dir.join("data");
        let (digest, last_modified) = self.handle.block_on(get(url, path.clone()))?;
        Ok(Download {
            path,
            digest,
            file_name,
            last_modified,
        })
    }
}

impl crate::Engine {
    /// `POST /build?remote=URL`: the tarball or Dockerfile at `url` fetched into the file
    /// `path` (the caller removes it), open for reading. Git repositories are not supported.
    pub fn fetch_context(
        &self,
        url: &str,
        path: &std::path::Path,
    ) -> Result<std::fs::File, String> {
        let git = url.starts_with("git://")
            || url.starts_with("git@")
            || url.starts_with("github.com/")
            || url
                .split(['?', '#'])
                .next()
                .is_some_and(|u| u.ends_with(".git"));
        if git {
            return Err(format!(
                "unable to prepare context: git repositories as build contexts are not supported by this builder: {url}"
            ));
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!(
                "unable to prepare context: unsupported remote context {url:?}"
            ));
        }
        tokio::runtime::Handle::current()
            .block_on(get(url, path.to_path_buf()))
            .map_err(|e| format!("unable to prepare context: {e}"))?;
        std::fs::File::open(path).map_err(|e| format!("unable to prepare context: {e}"))
    }
}

/// The last segment of the URL's path (Docker names the file after it).
fn file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split(['?', '#']).next()?;
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_string())
}

/// GETs `url` into `path`; its digest and `Last-Modified`.
async fn get(url: &str, path: PathBuf) -> Result<(String, Option<SystemTime>), BackendError> {
    let fail = |e: &dyn std::fmt::Display| BackendError::new(format!("failed to GET {url}: {e}"));
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| fail(&e))?;
    let mut resp = client.get(url).send().await.map_err(|e| fail(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(BackendError::new(format!(
            "failed to GET {url} with status {status}"
        )));
    }
    let last_modified = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let mut file = tokio::fs::File::create(&path).await.map_err(|e| fail(&e))?;
    let mut hash = Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(&e))? {
        hash.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| fail(&e))?;
    }
    file.flush().await.map_err(|e| fail(&e))?;
    Ok((
        format!("sha256:{}", hex::encode(hash.finalize())),
        last_modified,
    ))
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate).
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let mut parts = text.split_whitespace().skip(1);
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    // A server's header is anyone's text: years outside 1970..=9999 would overflow below.
    let year_ok = (1970..=9999).contains(&year);
    if parts.next()? != "GMT" || !year_ok || day == 0 || day > 31 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days since the epoch of a civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_files_and_dates_parse() {
        assert_eq!(
            file_name("http://h:1/a/b/c.tgz?x=1").as_deref(),
            Some("c.tgz")
        );
        assert_eq!(file_name("https://h/file").as_deref(), Some("file"));
        assert_eq!(file_name("https://h/dir/"), None);
        assert_eq!(file_name("https://h"), None);
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            784_111_777
        );
        assert!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST").is_none());
        assert!(parse_http_date("garbage").is_none());
        assert!(parse_http_date("Sun, 06 Nov 9223372036854775807 08:49:37 GMT").is_none());
        assert!(parse_http_date("Sun, 06 Nov -5 08:49:37 GMT").is_none());
    }
}
