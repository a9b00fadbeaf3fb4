//! The requests the CRI stores for a later connection, and the cache that holds them under
//! single-use random tokens for a short time (kubelet's requestCache: one minute, at most
//! 1000 waiting).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// CRI `ExecRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// CRI `AttachRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachRequest {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// CRI `PortForwardRequest`. The ports are the WebSocket protocol's (a SPDY client names the
/// port of each stream pair in its headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortForwardRequest {
    pub pod_sandbox_id: String,
    pub ports: Vec<u16>,
}

/// A stored request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

/// Why a request cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("too many streaming requests waiting ({0})")]
    Full(usize),
    #[error("no random token: {0}")]
    Random(String),
}

/// Requests waiting for their connection.
pub struct RequestCache {
    ttl: Duration,
    max: usize,
    entries: Mutex<HashMap<String, (Instant, Request)>>,
}

impl RequestCache {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Stores a request; returns its token (22 URL-safe characters, 128 random bits).
    pub fn insert(&self, request: Request) -> Result<String, CacheError> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).map_err(|e| CacheError::Random(e.to_string()))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (expires, _)| *expires > now);
        if entries.len() >= self.max {
            return Err(CacheError::Full(self.max));
        }
        entries.insert(token.clone(), (now + self.ttl, request));
        Ok(token)
    }

    /// Takes the request of a token, once, if it has not expired.
    pub fn consume(&self, token: &str) -> Option<Request> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, request) = entries.remove(token)?;
        (expires > Instant::now()).then_some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_use_and_expire() {
        let cache = RequestCache::new(Duration::from_millis(50), 2);
        let req = Request::Exec(ExecRequest::default());
        let a = cache.insert(req.clone()).unwrap();
        let b = cache.insert(req.clone()).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(matches!(
            cache.insert(req.clone()),
            Err(CacheError::Full(2))
        ));
        assert_eq!(cache.consume(&a), Some(req));
        assert_eq!(cache.consume(&a), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.consume(&b), None);
    }
}
