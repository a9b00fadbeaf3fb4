#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! kubectl itself against the streaming server: `kubectl exec` (WebSocket v5, and SPDY with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`) and `kubectl port-forward` (SPDY). kubectl talks to
//! an API server; the test's fake one answers discovery and the pod, and hands the exec and
//! port-forward upgrades over to the URL the streaming server gave out, as kubelet's proxy
//! does.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_streaming::{AttachRequest, Config, ExecRequest, PortForwardRequest, Server};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const POD: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod","namespace":"default","uid":"u1"},"spec":{"containers":[{"name":"ctr","image":"busybox"}]},"status":{"phase":"Running"}}"#;
const API: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:1"}]}"#;
const APIS: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#;
const V1: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#;

fn kubectl() -> Option<&'static str> {
    let ok = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kubectl is missing (apt-get install kubernetes-client)"
        );
        eprintln!("skipped: no kubectl");
        return None;
    }
    Some("kubectl")
}

/// A fake API server: the streaming URLs in `urls` serve the upgrades, in order.
async fn api_server(streaming: SocketAddr, urls: Arc<Mutex<VecDeque<String>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let urls = urls.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let head = String::from_utf8(head).unwrap();
                let path = head.split(' ').nth(1).unwrap().to_string();
                let route = path.split('?').next().unwrap().to_string();
                if route.ends_with("/exec")
                    || route.ends_with("/attach")
                    || route.ends_with("/portforward")
                {
                    let url = urls.lock().unwrap().pop_front().expect("a streaming URL");
                    let mut upstream = TcpStream::connect(streaming).await.unwrap();
                    let query = path
                        .split_once('?')
                        .map(|(_, q)| format!("?{q}"))
                        .unwrap_or_default();
                    let head = head.replacen(&path, &format!("{}{query}", path_of(&url)), 1);
                    upstream.write_all(head.as_bytes()).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut upstream).await;
                    return;
                }
                let body = match route.as_str() {
                    "/api" => API,
                    "/apis" => APIS,
                    "/api/v1" => V1,
                    "/api/v1/namespaces/default/pods/pod" => POD,
                    _ => "",
                };
                let status = if body.is_empty() {
                    "404 Not Found"
                } else {
                    "200 OK"
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

struct Setup {
    server: Server,
    urls: Arc<Mutex<VecDeque<String>>>,
    api: SocketAddr,
    cache: std::path::PathBuf,
}

async fn setup() -> Setup {
    let (server, _fake) = server(Config::default()).await;
    let urls = Arc::new(Mutex::new(VecDeque::new()));
    let api = api_server(server.local_addr(), urls.clone()).await;
    let cache =
        std::env::temp_dir().join(format!("berth-streaming-kubectl-{}", std::process::id()));
    Setup {
        server,
        urls,
        api,
        cache,
    }
}

impl Setup {
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg(format!("--server=http://{}", self.api))
            .arg(format!("--cache-dir={}", self.cache.display()))
            .arg("--kubeconfig=/dev/null")
            .args(args)
            .kill_on_drop(true);
        cmd
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.cache);
    }
}

async fn exec(websocket: bool) {
    if kubectl().is_none() {
        return;
    }
    let s = setup().await;
    let url = s
        .server
        .get_exec(ExecRequest {
            container_id: "ctr".into(),
            cmd: vec!["echo".into(), "3".into()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .unwrap();
    s.urls.lock().unwrap().push_back(url);
    let mut cmd = s.command(&["exec", "-i", "pod", "-c", "ctr", "--", "echo", "3"]);
    cmd.env(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
        if websocket { "true" } else { "false" },
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let input = "line\n".repeat(20000);
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn({
        let input = input.clone();
        async move {
            stdin.write_all(input.as_bytes()).await.unwrap();
        }
    });
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stdout == input,
        "stdout of {} bytes; stderr: {stderr}",
        stdout.len()
    );
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );
}

#[tokio::test]
async fn kubectl_exec_over_websocket() {
    exec(true).await;
}

#[tokio::test]
async fn kubectl_exec_over_spdy() {
    exec(false).await;
}

#[tokio::test]
async fn kubectl_port_forward_over_spdy() {
    if kubectl().is_none() {
        return;
    }
    let s = setup().await;
    let url = s
        .server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "pod".into(),
            ports: vec![],
        })
        .unwrap();
    s.urls.lock().unwrap().push_back(url);
    let local = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = s.command(&[
        "port-forward",
        "pod",
        &format!("{local}:80"),
        &format!("{}:81", local + 1),
    ]);
    cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    // Wait for kubectl to listen.
    let mut stdout = child.stdout.take().unwrap();
    let mut said = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&said).contains(&format!(":{} -> 81", local + 1)) {
        let n = tokio::time::timeout(WAIT, stdout.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "kubectl port-forward ended: {}",
            String::from_utf8_lossy(&said)
        );
        said.extend_from_slice(&buf[..n]);
    }
    for (port, remote) in [(local, 80), (local + 1, 81), (local, 80)] {
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let want = format!("port {remote}\nhello");
        let mut got = Vec::new();
        while got.len() < want.len() {
            let n = tokio::time::timeout(WAIT, c.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
    child.kill().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

#[tokio::test]
async fn kubectl_attach_over_spdy_and_websocket() {
    if kubectl().is_none() {
        return;
    }
    for websocket in ["false", "true"] {
        let s = setup().await;
        let url = s
            .server
            .get_attach(AttachRequest {
                container_id: "ctr".into(),
                tty: false,
                stdin: true,
                stdout: true,
                stderr: true,
            })
            .unwrap();
        s.urls.lock().unwrap().push_back(url);
        let mut cmd = s.command(&["attach", "-i", "pod", "-c", "ctr"]);
        cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websocket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"attached\n").await.unwrap();
        drop(stdin);
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "websocket={websocket}: {stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "attached\n",
            "{stderr}"
        );
    }
}
