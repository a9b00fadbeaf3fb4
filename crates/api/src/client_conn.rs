//! How the client reaches a daemon, as the docker CLI's `-H`: `unix://PATH`, `tcp://HOST:PORT`
//! (with TLS: the server checked against a CA, a client certificate presented) and
//! `ssh://[USER@]HOST[:PORT]` (`ssh ... -- berth system dial-stdio`, its stdin and stdout the
//! connection). Every connection is a [`Stream`].

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_rustls::client::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(
        "unsupported host {0:?}: expected unix://PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]"
    )]
    Host(String),
    #[error("could not read CA certificate {path:?}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("could not load X509 key pair ({cert:?}, {key:?}): {reason}")]
    KeyPair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid server name {0:?}")]
    ServerName(String),
}

/// The TLS settings of a `tcp://` host (docker's `--tls`, `--tlsverify`, `--tlscacert`,
/// `--tlscert`, `--tlskey`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// The CA the server's certificate must chain to (with `verify`).
    pub ca: Option<PathBuf>,
    /// The client certificate and key, presented when both are given.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Check the server's certificate (else any is accepted, as docker's `--tls` alone).
    pub verify: bool,
}

/// Where the daemon is.
#[derive(Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp {
        addr: String,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    },
    /// A program whose stdin and stdout are the connection (ssh).
    Command {
        program: String,
        args: Vec<String>,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp { addr, tls } => write!(f, "tcp://{addr} (tls: {})", tls.is_some()),
            Endpoint::Command { program, args } => write!(f, "{program} {args:?}"),
        }
    }
}

impl Endpoint {
    /// The endpoint of `host`; `tls` applies to `tcp://` hosts.
    pub fn parse(host: &str, tls: Option<&TlsOptions>) -> Result<Endpoint, ConnError> {
        if let Some(p) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        if let Some(rest) = host.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() || rest.contains('/') {
                return Err(ConnError::Host(host.to_string()));
            }
            let has_port = rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| (!h.contains(':') || h.ends_with(']')) && !p.is_empty());
            let addr = if has_port {
                rest.to_string()
            } else {
                // The docker CLI's defaults: 2376 with TLS, 2375 without.
                format!("{rest}:{}", if tls.is_some() { 2376 } else { 2375 })
            };
            let tls = match tls {
                Some(opts) => {
                    let name = addr
                        .rsplit_once(':')
                        .map_or(addr.as_str(), |(h, _)| h)
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string();
                    let server = ServerName::try_from(name.clone())
                        .map_err(|_| ConnError::ServerName(name))?;
                    Some((client_config(opts)?, server))
                }
                None => None,
            };
            return Ok(Endpoint::Tcp { addr, tls });
        }
        if let Some(rest) = host.strip_prefix("ssh://") {
            return ssh(rest).ok_or_else(|| ConnError::Host(host.to_string()));
        }
        Err(ConnError::Host(host.to_string()))
    }

    /// Opens a connection.
    pub async fn connect(&self) -> io::Result<Stream> {
        match self {
            Endpoint::Unix(p) => Ok(Stream::Unix(UnixStream::connect(p).await?)),
            Endpoint::Tcp { addr, tls } => {
                let tcp = TcpStream::connect(addr.as_str()).await?;
                let _ = tcp.set_nodelay(true);
                match tls {
                    None => Ok(Stream::Tcp(tcp)),
                    Some((config, name)) => {
                        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                        let tls = connector.connect(name.clone(), tcp).await?;
                        Ok(Stream::Tls(Box::new(tls)))
                    }
                }
            }
            Endpoint::Command { program, args } => {
                let mut child = tokio::process::Command::new(program)
                    .args(args)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()?;
                let stdin = child.stdin.take();
                let stdout = child
                    .stdout
                    .take()
                    .ok_or_else(|| io::Error::other("no stdout of the connection's command"))?;
                Ok(Stream::Command(Box::new(CommandIo {
                    stdin,
                    stdout,
                    _child: child,
                })))
            }
        }
    }
}

/// `ssh [-l USER] [-p PORT] -- HOST berth system dial-stdio` for `[USER@]HOST[:PORT]`.
fn ssh(rest: &str) -> Option<Endpoint> {
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (hostport, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.starts_with('-') || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return None;
    }
    let mut args = vec![
        "-o".to_string(),
        "ConnectTimeout=30".to_string(),
        "-T".to_string(),
    ];
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        args.extend(["-l".to_string(), u.to_string()]);
    }
    if let Some(p) = port {
        args.extend(["-p".to_string(), p.to_string()]);
    }
    args.extend(["--", host, "berth", "system", "dial-stdio"].map(str::to_string));
    Some(Endpoint::Command {
        program: "ssh".to_string(),
        args,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

fn client_config(opts: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, ConnError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = if opts.verify {
        let mut roots = rustls::RootCertStore::empty();
        let Some(ca) = &opts.ca else {
            return Err(ConnError::Ca {
                path: PathBuf::new(),
                reason: "no CA certificate given".into(),
            });
        };
        let ca_err = |reason: String| ConnError::Ca {
            path: ca.clone(),
            reason,
        };
        let certs = read_certs(ca).map_err(ca_err)?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in the file".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| ca_err(e.to_string()))?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
    };
    let config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let err = |reason: String| ConnError::KeyPair {
                cert: cert.clone(),
                key: key.clone(),
                reason,
            };
            let chain = read_certs(cert).map_err(err)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err(e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `--tls` without `--tlsverify`: any server certificate is accepted (its signatures are still
/// checked), as the docker CLI's `InsecureSkipVerify`.
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One connection to the daemon.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A program's stdout (read) and stdin (written; closed by `shutdown`).
    Command(Box<CommandIo>),
}

/// The pipes of a connection's program, which is killed when they are dropped.
pub struct CommandIo {
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    _child: Child,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Command(c) => Pin::new(&mut c.stdout).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Command(c) => match &mut c.stdin {
                Some(w) => Pin::new(w).poll_write(cx, buf),
                None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Command(c) => match &mut c.stdin {
                Some(w) => Pin::new(w).poll_flush(cx),
                None => Poll::Ready(Ok(())),
            },
        }
    }

    /// Half-closes: the daemon reads the end of the input, the reading side stays open
    /// (TLS: `close_notify`, then the TCP write side).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Command(c) => {
                c.stdin.take();
                Poll::Ready(Ok(()))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts() {
        assert!(matches!(
            Endpoint::parse("unix:///run/x.sock", None).unwrap(),
            Endpoint::Unix(p) if p == Path::new("/run/x.sock")
        ));
        assert!(matches!(
            Endpoint::parse("tcp://1.2.3.4", None).unwrap(),
            Endpoint::Tcp { addr, tls: None } if addr == "1.2.3.4:2375"
        ));
        assert!(matches!(
            Endpoint::parse("tcp://1.2.3.4:99/", None).unwrap(),
            Endpoint::Tcp { addr, .. } if addr == "1.2.3.4:99"
        ));
        let Endpoint::Command { program, args } =
            Endpoint::parse("ssh://me@box:2222", None).unwrap()
        else {
            panic!("not a command");
        };
        assert_eq!(program, "ssh");
        assert_eq!(
            args,
            [
                "-o",
                "ConnectTimeout=30",
                "-T",
                "-l",
                "me",
                "-p",
                "2222",
                "--",
                "box",
                "berth",
                "system",
                "dial-stdio"
            ]
        );
        assert!(Endpoint::parse("ssh://-oProxyCommand=x", None).is_err());
        assert!(Endpoint::parse("udp://x", None).is_err());
    }
}
