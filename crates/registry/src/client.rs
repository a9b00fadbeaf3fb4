//! The HTTP side of the distribution API: which scheme a registry speaks, and authorisation.
//!
//! - Scheme: HTTPS with the system's roots. For `localhost`, loopback addresses and the hosts
//!   the user marks insecure, HTTPS is tried first and plain HTTP used if it fails, as docker
//!   does.
//! - Auth: `GET /v2/` tells what the registry wants (the `WWW-Authenticate` challenge). `Basic`
//!   gets the saved credential on every request; `Bearer` gets a token from the challenge's realm
//!   for the scope the request needs (`repository:NAME:pull` or `pull,push`), asked with the
//!   credential if there is one, anonymously otherwise, and cached per scope. A 401 on a
//!   request whose token has expired fetches a new one and retries once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::credentials::Credential;

/// Docker Hub's registry host, for references on `docker.io`.
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{method} {url}: {}", chain(source))]
    Http {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An error the registry answered with, worded as docker words distribution's error codes
    /// (`manifest unknown: manifest unknown`).
    #[error("{0}")]
    Registry(RegistryErrors),
    #[error("{url}: unauthorized: {message}")]
    Unauthorized { url: String, message: String },
    #[error("get token from {realm}: {message}")]
    Token { realm: String, message: String },
    #[error("unexpected {status} from {method} {url}")]
    Status {
        method: Method,
        url: String,
        status: StatusCode,
    },
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("certificate {}: {message}", path.display())]
    Certificate { path: PathBuf, message: String },
    #[error("building the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

/// The `errors` array of a registry's error body, with the HTTP status it came with.
#[derive(Debug, Clone)]
pub struct RegistryErrors {
    pub status: StatusCode,
    pub errors: Vec<(String, String)>,
}

impl RegistryErrors {
    /// Whether one of the errors has this distribution error code (`BLOB_UNKNOWN`, ...).
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|(c, _)| c == code)
    }
}

impl std::fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.errors.is_empty() {
            return write!(f, "unexpected status {}", self.status);
        }
        for (i, (code, message)) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {message}", code.to_lowercase().replace('_', " "))?;
        }
        Ok(())
    }
}

/// What a registry asked for at `/v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    None,
    Basic,
    Bearer { realm: String, service: String },
}

#[derive(Debug, Clone)]
struct HostState {
    base: String,
    challenge: Challenge,
}

/// How a [`Client`] is set up.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Registry hosts (`host[:port]`) where plain HTTP is allowed.
    pub insecure: Vec<String>,
    /// Credentials per registry host (as references name it).
    pub credentials: HashMap<String, Credential>,
    /// Gives up connecting after this long (default 30 s).
    pub connect_timeout: Option<Duration>,
    /// Extra certificate authorities, as docker's `/etc/docker/certs.d`: every `*.crt` in
    /// `<dir>/<host>/` is trusted (for all hosts) besides the system's roots.
    pub certs_dir: Option<PathBuf>,
}

/// A registry client shared by concurrent pulls and pushes.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
    hosts: Mutex<HashMap<String, HostState>>,
    tokens: Mutex<HashMap<(String, String), String>>,
}

/// The pull and push scopes of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Client {
    pub fn new(options: ClientOptions) -> Result<Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
        if let Some(dir) = &options.certs_dir {
            builder = builder.tls_certs_merge(extra_roots(dir)?);
        }
        let http = builder.build().map_err(ClientError::Build)?;
        Ok(Client {
            http,
            options,
            hosts: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Whether plain HTTP may be used for `host`.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = host_name(host);
        name == "localhost"
            || name == "::1"
            || name.starts_with("127.")
            || self.options.insecure.iter().any(|h| h == host || h == name)
    }

    /// The base URL (`https://host`) of `domain`, found with a `GET /v2/` the first time (which
    /// also learns the registry's auth challenge).
    pub async fn base_url(&self, domain: &str) -> Result<String, ClientError> {
        Ok(self.host_state(domain).await?.base)
    }

    async fn host_state(&self, domain: &str) -> Result<HostState, ClientError> {
        if let Some(state) = lock(&self.hosts).get(domain) {
            return Ok(state.clone());
        }
        let host = if domain == "docker.io" {
            DOCKER_HUB_REGISTRY
        } else {
            domain
        };
        let https = format!("https://{host}");
        let state = match self.ping(&https).await {
            Ok(challenge) => HostState {
                base: https,
                challenge,
            },
            Err(https_err @ ClientError::Http { .. }) if self.is_insecure(domain) => {
                let http = format!("http://{host}");
                // If plain HTTP fails too, the HTTPS error is the one that explains.
                let challenge = self.ping(&http).await.map_err(|_| https_err)?;
                HostState {
                    base: http,
                    challenge,
                }
            }
            Err(e) => return Err(e),
        };
        lock(&self.hosts).insert(domain.to_string(), state.clone());
        Ok(state)
    }

    async fn ping(&self, base: &str) -> Result<Challenge, ClientError> {
        let url = format!("{base}/v2/");
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(http_err(Method::GET, &url))?;
        match resp.status() {
            StatusCode::UNAUTHORIZED => Ok(parse_challenge(resp.headers())),
            s if s.is_success() => Ok(Challenge::None),
            status => Err(ClientError::Status {
                method: Method::GET,
                url,
                status,
            }),
        }
    }

    /// Checks a credential against `domain`: Basic registries must accept it at `/v2/`, token
    /// services must hand out a token for it. This is `login`.
    pub async fn check_login(&self, domain: &str) -> Result<(), ClientError> {
        let state = self.host_state(domain).await?;
        let url = format!("{}/v2/", state.base);
        let header = match &state.challenge {
            Challenge::None => return Ok(()),
            Challenge::Basic => self.basic_header(domain),
            Challenge::Bearer { realm, service } => {
                Some(self.fetch_token(domain, realm, service, "").await?)
            }
        };
        let mut req = self.http.get(&url);
        if let Some(h) = header {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().await.map_err(http_err(Method::GET, &url))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(error_of(Method::GET, &url, resp).await)
        }
    }

    /// Sends `method` to `location` (a path under the registry's base URL, or a whole URL as
    /// upload locations are) in `repo` on `domain`, authorised for `access`. `customize` adds
    /// headers and body; it is called again for the one retry after a token expired. Statuses are
    /// the caller's to check.
    pub async fn send(
        &self,
        domain: &str,
        repo: &str,
        access: Access,
        method: Method,
        location: &str,
        customize: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let state = self.host_state(domain).await?;
        let url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", state.base)
        };
        let scope = match access {
            Access::Pull => format!("repository:{repo}:pull"),
            Access::Push => format!("repository:{repo}:pull,push"),
        };
        let bearer = matches!(state.challenge, Challenge::Bearer { .. });
        let mut refreshed = false;
        let mut resent = false;
        loop {
            let header = self.auth_header(domain, &state, &scope, refreshed).await?;
            let mut req = customize(self.http.request(method.clone(), &url));
            if let Some(h) = &header {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                // A pooled connection the server closed as we reused it: once more, on a new one.
                Err(e) if !resent && e.is_request() && !e.is_timeout() => {
                    resent = true;
                    continue;
                }
                Err(e) => return Err(http_err(method.clone(), &url)(e)),
            };
            if resp.status() == StatusCode::UNAUTHORIZED && bearer && !refreshed {
                // The cached token may have expired: get a fresh one and try once more.
                lock(&self.tokens).remove(&(domain.to_string(), scope.clone()));
                refreshed = true;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn auth_header(
        &self,
        domain: &str,
        state: &HostState,
        scope: &str,
        fresh: bool,
    ) -> Result<Option<String>, ClientError> {
        match &state.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.basic_header(domain)),
            Challenge::Bearer { realm, service } => {
                let key = (domain.to_string(), scope.to_string());
                if !fresh {
                    if let Some(token) = lock(&self.tokens).get(&key) {
                        return Ok(Some(token.clone()));
                    }
                }
                let header = self.fetch_token(domain, realm, service, scope).await?;
                lock(&self.tokens).insert(key, header.clone());
                Ok(Some(header))
            }
        }
    }

    fn basic_header(&self, domain: &str) -> Option<String> {
        self.options.credentials.get(domain).map(|c| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", c.username, c.password))
            )
        })
    }

    /// Asks the token service for a token for `scope`; returns the `Bearer ...` header.
    async fn fetch_token(
        &self,
        domain: &str,
        realm: &str,
        service: &str,
        scope: &str,
    ) -> Result<String, ClientError> {
        let token_err = |message: String| ClientError::Token {
            realm: realm.to_string(),
            message,
        };
        let mut query = vec![("service", service)];
        if !scope.is_empty() {
            query.push(("scope", scope));
        }
        let mut req = self.http.get(realm).query(&query);
        if let Some(h) = self.basic_header(domain) {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().await.map_err(http_err(Method::GET, realm))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ClientError::Unauthorized {
                url: realm.to_string(),
                message: "incorrect username or password".to_string(),
            });
        }
        if !status.is_success() {
            return Err(token_err(format!("unexpected status {status}")));
        }
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| token_err(format!("invalid response: {e}")))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("the response has no token".to_string()))?;
        Ok(format!("Bearer {token}"))
    }
}

/// The certificates of every `<dir>/<host>/*.crt`; a missing `dir` has none.
fn extra_roots(dir: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let cert_err = |path: &Path, message: String| ClientError::Certificate {
        path: path.to_path_buf(),
        message,
    };
    let mut roots = Vec::new();
    let Ok(hosts) = std::fs::read_dir(dir) else {
        return Ok(roots);
    };
    for host in hosts.flatten() {
        let Ok(files) = std::fs::read_dir(host.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_none_or(|e| e != "crt") {
                continue;
            }
            let pem = std::fs::read(&path).map_err(|e| cert_err(&path, e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| cert_err(&path, e.to_string()))?;
            roots.extend(certs);
        }
    }
    Ok(roots)
}

/// Turns a failed response into the error it carries: distribution's `errors` body if there
/// is one, else the status.
pub async fn error_of(method: Method, url: &str, resp: Response) -> ClientError {
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_default();
    let errors: Vec<(String, String)> = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap_or("UNKNOWN").to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    if status == StatusCode::UNAUTHORIZED && errors.is_empty() {
        return ClientError::Unauthorized {
            url: url.to_string(),
            message: "authentication required".to_string(),
        };
    }
    if errors.is_empty() {
        return ClientError::Status {
            method,
            url: url.to_string(),
            status,
        };
    }
    ClientError::Registry(RegistryErrors { status, errors })
}

/// An error and its causes, `: `-separated (reqwest's own message hides the cause: "error
/// sending request").
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

pub(crate) fn http_err(method: Method, url: &str) -> impl FnOnce(reqwest::Error) -> ClientError {
    let url = url.to_string();
    move |source| ClientError::Http {
        method,
        url,
        source,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `host` without its port (`[::1]:5000` → `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Parses `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` (or `Basic ...`).
fn parse_challenge(headers: &HeaderMap) -> Challenge {
    let Some(value) = headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()) else {
        return Challenge::Basic;
    };
    let (scheme, params) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::Basic;
    }
    let params = parse_params(params);
    Challenge::Bearer {
        realm: params.get("realm").cloned().unwrap_or_default(),
        service: params.get("service").cloned().unwrap_or_default(),
    }
}

/// `a="x",b=y, c="with \" and ,"` into a map.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                value.push(c);
            }
        }
        out.insert(key.trim().to_lowercase(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn challenges_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
            ),
        );
        assert_eq!(
            parse_challenge(&h),
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: "registry.docker.io".into()
            }
        );
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="Registry Realm""#),
        );
        assert_eq!(parse_challenge(&h), Challenge::Basic);
        let p = parse_params(r#"a="x,y", b=z ,c="q\"uote""#);
        assert_eq!(p["a"], "x,y");
        assert_eq!(p["b"], "z ");
        assert_eq!(p["c"], "q\"uote");
    }

    #[test]
    fn loopback_and_marked_hosts_are_insecure() {
        let c = Client::new(ClientOptions {
            insecure: vec!["reg.lan:5000".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("127.0.0.1:40000"));
        assert!(c.is_insecure("[::1]:5000"));
        assert!(c.is_insecure("reg.lan:5000"));
        assert!(!c.is_insecure("reg.lan:6000"));
        assert!(!c.is_insecure("docker.io"));
    }

    #[test]
    fn registry_errors_read_as_docker_words_them() {
        let e = RegistryErrors {
            status: StatusCode::NOT_FOUND,
            errors: vec![("MANIFEST_UNKNOWN".into(), "manifest unknown".into())],
        };
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        assert!(e.has_code("MANIFEST_UNKNOWN"));
    }
}
