//! The HTTP side of the distribution API: where a registry's requests go, which scheme it
//! speaks, and authorisation.
//!
//! - Endpoints: a registry's requests go to the endpoints [`crate::hosts`] lists (containerd's
//!   `hosts.toml` in the registry configuration directory, dockerd's mirrors for Docker Hub),
//!   then to the registry itself. A pull's request goes to the endpoints that may serve it
//!   (`pull`, and `resolve` too for a manifest by tag), in order: one that cannot be reached or
//!   answers an error status is passed over for the next, as containerd does. A push goes to the
//!   first endpoint with `push`.
//! - Scheme: HTTPS with the system's roots; an endpoint named `http://` speaks plain HTTP. For
//!   the registry's own server on `localhost`, loopback addresses and the hosts the user marks
//!   insecure, HTTPS is tried first and plain HTTP used if it fails, as docker does.
//! - Auth: `GET /v2/` tells what the registry wants (the `WWW-Authenticate` challenge). `Basic`
//!   gets the saved credential on every request; `Bearer` gets a token from the challenge's realm
//!   for the scope the request needs (`repository:NAME:pull` or `pull,push`), asked with the
//!   credential if there is one, anonymously otherwise, and cached per endpoint and scope. A 401
//!   on a request whose token has expired fetches a new one and retries once. The registry's
//!   credential is offered to all its endpoints, as containerd offers a pull's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use crate::credentials::Credential;
use crate::hosts::{self, Capabilities, HostsError, DOCKER_HUB_REGISTRY};

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
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// An endpoint this client could not connect to before (its first error).
    #[error("{url}: unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// The configuration left no endpoint that may do this (containerd: `no pull hosts`).
    #[error("no {what} hosts for {domain}: not found")]
    NoHosts { what: &'static str, domain: String },
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

/// One endpoint as found: `scheme://host`, the API root (that replaces `/v2`), the challenge.
#[derive(Debug, Clone)]
struct HostState {
    origin: String,
    root: String,
    challenge: Challenge,
}

/// An endpoint of a registry with the HTTP client of its TLS settings.
#[derive(Debug)]
struct Endpoint {
    spec: hosts::Endpoint,
    http: reqwest::Client,
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
    /// The registry configuration directory, as docker's `/etc/docker/certs.d` and
    /// containerd's: every `*.crt` in `<dir>/<host>/` is trusted (for all hosts) besides the
    /// system's roots, and `<dir>/<host>/hosts.toml` lists a registry's endpoints
    /// ([`crate::hosts`]).
    pub certs_dir: Option<PathBuf>,
    /// dockerd's `registry-mirrors`: tried, in order, before Docker Hub for `docker.io`.
    pub mirrors: Vec<String>,
}

/// A registry client shared by concurrent pulls and pushes.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    options: ClientOptions,
    /// The certificates of the configuration directory, for endpoints' own clients.
    roots: Vec<reqwest::Certificate>,
    /// Per registry host: its endpoints, read from the configuration once per client.
    endpoints: Mutex<HashMap<String, Arc<Vec<Endpoint>>>>,
    /// Per endpoint (`scheme://host/root` as configured).
    hosts: Mutex<HashMap<String, HostState>>,
    /// Per endpoint API root and scope.
    tokens: Mutex<HashMap<(String, String), String>>,
    /// Endpoints that could not be connected to, with why: passed over by later requests.
    unreachable: Mutex<HashMap<String, String>>,
}

/// The pull and push scopes of a repository, and what a request needs of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A manifest by tag: the pull scope, on endpoints with `pull` and `resolve`.
    Resolve,
    /// Blobs, manifests by digest: the pull scope, on endpoints with `pull`.
    Pull,
    /// The push scope, on the first endpoint with `push`.
    Push,
}

impl Access {
    fn needs(self) -> (Capabilities, &'static str) {
        let none = Capabilities::default();
        match self {
            Access::Resolve => (
                Capabilities {
                    pull: true,
                    resolve: true,
                    ..none
                },
                "resolve",
            ),
            Access::Pull => (Capabilities { pull: true, ..none }, "pull"),
            Access::Push => (Capabilities { push: true, ..none }, "push"),
        }
    }
}

impl Client {
    pub fn new(options: ClientOptions) -> Result<Client, ClientError> {
        let roots = match &options.certs_dir {
            Some(dir) => extra_roots(dir)?,
            None => Vec::new(),
        };
        let http = Client::builder(&options)
            .tls_certs_merge(roots.clone())
            .build()
            .map_err(ClientError::Build)?;
        Ok(Client {
            http,
            options,
            roots,
            endpoints: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashMap::new()),
        })
    }

    fn builder(options: &ClientOptions) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(30)))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
    }

    /// Whether plain HTTP may be used for `host`.
    pub fn is_insecure(&self, host: &str) -> bool {
        let name = host_name(host);
        name == "localhost"
            || name == "::1"
            || name.starts_with("127.")
            || self.options.insecure.iter().any(|h| h == host || h == name)
    }

    /// The endpoints of `domain`, in the order they are tried (read from the configuration
    /// directory the first time).
    fn endpoints(&self, domain: &str) -> Result<Arc<Vec<Endpoint>>, ClientError> {
        if let Some(list) = lock(&self.endpoints).get(domain) {
            return Ok(Arc::clone(list));
        }
        let specs = hosts::endpoints(
            self.options.certs_dir.as_deref(),
            domain,
            &self.options.mirrors,
        )?;
        let mut list = Vec::with_capacity(specs.len());
        for spec in specs {
            let http = if spec.has_tls_settings() {
                self.endpoint_client(&spec)?
            } else {
                self.http.clone()
            };
            list.push(Endpoint { spec, http });
        }
        let list = Arc::new(list);
        lock(&self.endpoints).insert(domain.to_string(), Arc::clone(&list));
        Ok(list)
    }

    /// An HTTP client with an endpoint's CAs, client certificates and `skip_verify`.
    fn endpoint_client(&self, spec: &hosts::Endpoint) -> Result<reqwest::Client, ClientError> {
        let cert_err = |path: &Path, message: String| ClientError::Certificate {
            path: path.to_path_buf(),
            message,
        };
        let read = |path: &Path| std::fs::read(path).map_err(|e| cert_err(path, e.to_string()));
        let mut roots = self.roots.clone();
        for ca in &spec.ca {
            let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|e| cert_err(ca, e.to_string()))?;
            roots.extend(certs);
        }
        let mut builder = Client::builder(&self.options).tls_certs_merge(roots);
        if let Some(skip) = spec.skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(skip);
        }
        // One identity per client: the first pair (rustls presents one certificate).
        if let Some((cert, key)) = spec.client.first() {
            let mut pem = read(cert)?;
            if let Some(key) = key {
                pem.push(b'\n');
                pem.extend(read(key)?);
            }
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|e| cert_err(cert, e.to_string()))?;
            builder = builder.identity(identity);
        }
        builder.build().map_err(ClientError::Build)
    }

    /// The base URL (`https://host`) of `domain`'s own server, found with a `GET /v2/` the
    /// first time (which also learns the registry's auth challenge).
    pub async fn base_url(&self, domain: &str) -> Result<String, ClientError> {
        let endpoints = self.endpoints(domain)?;
        let server = server_of(&endpoints, domain)?;
        Ok(self.host_state(domain, server).await?.origin)
    }

    async fn host_state(&self, domain: &str, ep: &Endpoint) -> Result<HostState, ClientError> {
        let key = format!("{}{}", ep.spec.origin(), ep.spec.path);
        if let Some(state) = lock(&self.hosts).get(&key) {
            return Ok(state.clone());
        }
        if let Some(message) = lock(&self.unreachable).get(&key) {
            return Err(ClientError::Unreachable {
                url: key,
                message: message.clone(),
            });
        }
        let origin = ep.spec.origin();
        let state = match self.ping(ep, &origin).await {
            Ok(challenge) => HostState {
                root: format!("{origin}{}", ep.spec.path),
                origin,
                challenge,
            },
            Err(https_err @ ClientError::Http { .. })
                if ep.spec.default_server && self.is_insecure(domain) =>
            {
                let http = format!("http://{}", ep.spec.host);
                // If plain HTTP fails too, the HTTPS error is the one that explains.
                match self.ping(ep, &http).await {
                    Ok(challenge) => HostState {
                        root: format!("{http}{}", ep.spec.path),
                        origin: http,
                        challenge,
                    },
                    Err(_) => return Err(self.note_unreachable(key, https_err)),
                }
            }
            Err(e) => return Err(self.note_unreachable(key, e)),
        };
        lock(&self.hosts).insert(key, state.clone());
        Ok(state)
    }

    /// Remembers an endpoint that could not be connected to (refused, timed out), so that the
    /// other requests of this client pass it over at once; returns the error.
    fn note_unreachable(&self, key: String, e: ClientError) -> ClientError {
        if let ClientError::Http { source, .. } = &e {
            if source.is_connect() || source.is_timeout() {
                lock(&self.unreachable).insert(key, chain(source));
            }
        }
        e
    }

    /// `GET <root>/`: the challenge. An endpoint whose root is not `/v2` (`override_path`)
    /// may answer anything else there: no challenge then.
    async fn ping(&self, ep: &Endpoint, origin: &str) -> Result<Challenge, ClientError> {
        let strict = ep.spec.path.ends_with("/v2");
        let url = format!("{origin}{}/", ep.spec.path);
        let mut req = ep.http.get(&url);
        for (name, values) in &ep.spec.header {
            for v in values {
                req = req.header(name.as_str(), v.as_str());
            }
        }
        let resp = req.send().await.map_err(http_err(Method::GET, &url))?;
        match resp.status() {
            StatusCode::UNAUTHORIZED => Ok(parse_challenge(resp.headers())),
            s if s.is_success() => Ok(Challenge::None),
            status if strict => Err(ClientError::Status {
                method: Method::GET,
                url,
                status,
            }),
            _ => Ok(Challenge::None),
        }
    }

    /// Checks a credential against `domain`: Basic registries must accept it at `/v2/`, token
    /// services must hand out a token for it. This is `login`.
    pub async fn check_login(&self, domain: &str) -> Result<(), ClientError> {
        let endpoints = self.endpoints(domain)?;
        let server = server_of(&endpoints, domain)?;
        let state = self.host_state(domain, server).await?;
        let url = format!("{}/", state.root);
        let header = match &state.challenge {
            Challenge::None => return Ok(()),
            Challenge::Basic => self.basic_header(domain),
            Challenge::Bearer { realm, service } => Some(
                self.fetch_token(&server.http, domain, realm, service, "")
                    .await?,
            ),
        };
        let mut req = server.http.get(&url);
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

    /// Sends `method` to `location` (a path under `/v2`, or a whole URL as upload locations
    /// are) in `repo` on `domain`, authorised for `access`. `customize` adds headers and body;
    /// it is called again for each endpoint tried and for the one retry after a token expired.
    ///
    /// Pulls (`Resolve`, `Pull`) try the endpoints that may serve them in order, passing over
    /// one that cannot be reached or answers an error status; when all fail, the first
    /// failure that was not a 404 is returned, else the 404. Statuses are the caller's to check.
    pub async fn send(
        &self,
        domain: &str,
        repo: &str,
        access: Access,
        method: Method,
        location: &str,
        customize: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let endpoints = self.endpoints(domain)?;
        let (need, what) = access.needs();
        let absolute = location.starts_with("http://") || location.starts_with("https://");
        if absolute && access != Access::Push {
            // A whole URL of a pull (search's): the registry's own server.
            let server = server_of(&endpoints, domain)?;
            return self
                .send_to(domain, server, repo, access, &method, location, &customize)
                .await;
        }
        let mut candidates = endpoints.iter().filter(|e| e.spec.capabilities.has(need));
        if access == Access::Push {
            let first = candidates.next().ok_or_else(|| ClientError::NoHosts {
                what,
                domain: domain.to_string(),
            })?;
            return self
                .send_to(domain, first, repo, access, &method, location, &customize)
                .await;
        }
        let mut failure: Option<Result<Response, ClientError>> = None;
        let mut not_found = None;
        for ep in candidates {
            match self
                .send_to(domain, ep, repo, access, &method, location, &customize)
                .await
            {
                Ok(resp) if resp.status().as_u16() < 400 => return Ok(resp),
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    not_found.get_or_insert(resp);
                }
                other => {
                    failure.get_or_insert(other);
                }
            }
        }
        match (failure, not_found) {
            (Some(f), _) => f,
            (None, Some(resp)) => Ok(resp),
            (None, None) => Err(ClientError::NoHosts {
                what,
                domain: domain.to_string(),
            }),
        }
    }

    /// [`Client::send`] to one endpoint.
    #[allow(clippy::too_many_arguments)]
    async fn send_to(
        &self,
        domain: &str,
        ep: &Endpoint,
        repo: &str,
        access: Access,
        method: &Method,
        location: &str,
        customize: &impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, ClientError> {
        let state = self.host_state(domain, ep).await?;
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            let rest = location.strip_prefix("/v2").unwrap_or(location);
            format!("{}{rest}", state.root)
        };
        // A mirror is told which registry the request is for (containerd's `ns`).
        let own = ep.spec.host == domain
            || (domain == "docker.io" && ep.spec.host == DOCKER_HUB_REGISTRY);
        if access != Access::Push && !own {
            let ns: String = form_urlencoded::byte_serialize(domain.as_bytes()).collect();
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("ns=");
            url.push_str(&ns);
        }
        let scope = match access {
            Access::Pull | Access::Resolve => format!("repository:{repo}:pull"),
            Access::Push => format!("repository:{repo}:pull,push"),
        };
        let bearer = matches!(state.challenge, Challenge::Bearer { .. });
        let mut refreshed = false;
        let mut resent = false;
        loop {
            let header = self
                .auth_header(&ep.http, domain, &state, &scope, refreshed)
                .await?;
            let mut req = customize(ep.http.request(method.clone(), &url));
            for (name, values) in &ep.spec.header {
                for v in values {
                    req = req.header(name.as_str(), v.as_str());
                }
            }
            if let Some(h) = &header {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                // A pooled connection the server closed as we reused it: once more, on a new one.
                Err(e) if !resent && e.is_request() && !e.is_timeout() && !e.is_connect() => {
                    resent = true;
                    continue;
                }
                Err(e) => return Err(http_err(method.clone(), &url)(e)),
            };
            if resp.status() == StatusCode::UNAUTHORIZED && bearer && !refreshed {
                // The cached token may have expired: get a fresh one and try once more.
                lock(&self.tokens).remove(&(state.root.clone(), scope.clone()));
                refreshed = true;
                continue;
            }
            return Ok(resp);
        }
    }

    async fn auth_header(
        &self,
        http: &reqwest::Client,
        domain: &str,
        state: &HostState,
        scope: &str,
        fresh: bool,
    ) -> Result<Option<String>, ClientError> {
        match &state.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(self.basic_header(domain)),
            Challenge::Bearer { realm, service } => {
                let key = (state.root.clone(), scope.to_string());
                if !fresh {
                    if let Some(token) = lock(&self.tokens).get(&key) {
                        return Ok(Some(token.clone()));
                    }
                }
                let header = self
                    .fetch_token(http, domain, realm, service, scope)
                    .await?;
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
        http: &reqwest::Client,
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
        let mut req = http.get(realm).query(&query);
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

/// The registry's own server: the last endpoint.
fn server_of<'a>(endpoints: &'a [Endpoint], domain: &str) -> Result<&'a Endpoint, ClientError> {
    endpoints.last().ok_or_else(|| ClientError::NoHosts {
        what: "server",
        domain: domain.to_string(),
    })
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
