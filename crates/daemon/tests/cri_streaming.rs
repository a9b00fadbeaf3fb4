//! The CRI's `Exec`, `Attach` and `PortForward` end to end: kubectl talks to a fake API
//! server that does kubelet's part (it asks berthd's CRI socket for the streaming URL of the
//! pod's container and splices the client's upgrade onto it), so the bytes go from kubectl
//! through berthd's streaming server and the container's monitor into a real container:
//! `kubectl exec -i` over WebSocket v5 and over SPDY/3.1, `kubectl attach -i`,
//! `kubectl port-forward` to a server on the pod's loopback; and a terminal with a resize over
//! a WebSocket client of the test's own.

#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/cri.rs"]
mod cri_world;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::skip;
use cri_world::*;
use k8s_cri::v1 as cri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(30);

const API: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1:1"}]}"#;
const APIS: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#;
const V1: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},{"name":"pods/attach","singularName":"","namespaced":true,"kind":"PodAttachOptions","verbs":["create","get"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#;

fn kubectl_missing() -> bool {
    let ok = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var("CI").is_err(), "kubectl is missing under CI");
        eprintln!("skipped: no kubectl");
    }
    !ok
}

/// `%XX` and `+` of a query value.
fn unescape(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The pairs of a query, in order.
fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), unescape(v))
        })
        .collect()
}

/// What kubelet knows: the pod's sandbox, its containers by name.
#[derive(Clone)]
struct Kubelet {
    rt: Rt,
    sandbox: String,
    containers: Arc<HashMap<String, String>>,
}

impl Kubelet {
    /// The CRI's streaming URL for one API server request.
    async fn url(&mut self, route: &str, q: &[(String, String)]) -> String {
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let flag = |k: &str| get(k) == Some("true") || get(k) == Some("1");
        let container = || self.containers[get("container").unwrap()].clone();
        if route.ends_with("/exec") {
            let cmd = q
                .iter()
                .filter(|(k, _)| k == "command")
                .map(|(_, v)| v.clone())
                .collect();
            let req = cri::ExecRequest {
                container_id: container(),
                cmd,
                tty: flag("tty"),
                stdin: flag("stdin"),
                stdout: flag("stdout"),
                stderr: flag("stderr"),
            };
            self.rt.exec(req).await.unwrap().into_inner().url
        } else if route.ends_with("/attach") {
            let req = cri::AttachRequest {
                container_id: container(),
                tty: flag("tty"),
                stdin: flag("stdin"),
                stdout: flag("stdout"),
                stderr: flag("stderr"),
            };
            self.rt.attach(req).await.unwrap().into_inner().url
        } else {
            let port = q
                .iter()
                .filter(|(k, _)| k == "ports")
                .filter_map(|(_, v)| v.parse().ok())
                .collect();
            let req = cri::PortForwardRequest {
                pod_sandbox_id: self.sandbox.clone(),
                port,
            };
            self.rt.port_forward(req).await.unwrap().into_inner().url
        }
    }
}

/// The fake API server.
async fn api_server(kubelet: Kubelet, pod: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut kubelet = kubelet.clone();
            let pod = pod.clone();
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
                let (route, q) = path.split_once('?').unwrap_or((&path, ""));
                let q = query(q);
                if route.ends_with("/exec")
                    || route.ends_with("/attach")
                    || route.ends_with("/portforward")
                {
                    let url = kubelet.url(route, &q).await;
                    let target = url.strip_prefix("http://").unwrap();
                    let (host, rest) = target.split_once('/').unwrap();
                    let mut upstream = TcpStream::connect(host).await.unwrap();
                    let head = head.replacen(&path, &format!("/{rest}"), 1);
                    upstream.write_all(head.as_bytes()).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut s, &mut upstream).await;
                    return;
                }
                let pod_json = format!(
                    r#"{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"{pod}","namespace":"default","uid":"u1"}},"spec":{{"containers":[{{"name":"app","image":"bb"}},{{"name":"talk","image":"bb","stdin":true}}]}},"status":{{"phase":"Running"}}}}"#
                );
                let body = match route {
                    "/api" => API.to_string(),
                    "/apis" => APIS.to_string(),
                    "/api/v1" => V1.to_string(),
                    r if r == format!("/api/v1/namespaces/default/pods/{pod}") => pod_json,
                    _ => String::new(),
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

struct World {
    api: SocketAddr,
    cache: std::path::PathBuf,
    rt: Rt,
    containers: Arc<HashMap<String, String>>,
}

impl World {
    fn kubectl(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg(format!("--server=http://{}", self.api))
            .arg(format!("--cache-dir={}", self.cache.display()))
            .arg("--kubeconfig=/dev/null")
            .args(args)
            .kill_on_drop(true);
        cmd
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.cache);
    }
}

/// A pod with `app` (sleeping, for exec), `talk` (stdin open, echoing what it reads) and a
/// web server on the pod's 127.0.0.1:8080.
async fn world(p: &Pods) -> World {
    let mut rt = client(&p.socket()).await;
    let config = pod_config("kp", &p.logs);
    let sandbox = run_pod(&mut rt, config.clone()).await;
    let app = start_container(
        &mut rt,
        &sandbox,
        &config,
        container_config(
            "app",
            "mkdir -p /www && echo hello > /www/index.html && httpd -p 127.0.0.1:8080 -h /www \
             && exec sleep 1000",
        ),
    )
    .await;
    let mut talk = container_config("talk", "while read -r line; do echo \"echo:$line\"; done");
    talk.stdin = true;
    let talk = start_container(&mut rt, &sandbox, &config, talk).await;
    let containers: Arc<HashMap<String, String>> =
        Arc::new([("app".to_string(), app), ("talk".to_string(), talk)].into());
    let kubelet = Kubelet {
        rt: rt.clone(),
        sandbox,
        containers: containers.clone(),
    };
    let api = api_server(kubelet, "kp".to_string()).await;
    World {
        api,
        cache: p.d.dir.join("kubectl-cache"),
        rt,
        containers,
    }
}

async fn kubectl_exec(w: &World, websocket: bool) {
    let script = "cat; echo err >&2; exit 3";
    let mut cmd = w.kubectl(&["exec", "-i", "kp", "-c", "app", "--", "sh", "-c", script]);
    cmd.env(
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS",
        if websocket { "true" } else { "false" },
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let input = "line of input\n".repeat(10_000);
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn({
        let input = input.clone();
        async move {
            stdin.write_all(input.as_bytes()).await.unwrap();
        }
    });
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("kubectl exec in time")
        .unwrap();
    writer.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "websocket={websocket}: {stderr}"
    );
    assert!(
        stdout == input,
        "{} bytes of stdout; {stderr}",
        stdout.len()
    );
    assert!(stderr.starts_with("err\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );
}

#[test]
fn kubectl_exec_attach_and_port_forward_reach_the_pod() {
    if skip() || plugins_missing() || kubectl_missing() {
        return;
    }
    let p = Pods::start("k");
    runtime().block_on(async {
        let w = world(&p).await;
        kubectl_exec(&w, true).await;
        kubectl_exec(&w, false).await;

        // attach: kubectl's stdin reaches the container's, its output comes back.
        for websocket in ["true", "false"] {
            let mut cmd = w.kubectl(&["attach", "-i", "kp", "-c", "talk"]);
            cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websocket)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            stdin
                .write_all(format!("hi-{websocket}\n").as_bytes())
                .await
                .unwrap();
            let want = format!("echo:hi-{websocket}\n");
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while got.len() < want.len() {
                let n = tokio::time::timeout(WAIT, stdout.read(&mut buf))
                    .await
                    .expect("attach output in time")
                    .unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8_lossy(&got), want);
            child.kill().await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }

        // port-forward to the pod's loopback (SPDY, as kubelet sees it).
        let local = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = w.kubectl(&["port-forward", "kp", &format!("{local}:8080")]);
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut said = Vec::new();
        let mut buf = [0u8; 512];
        while !String::from_utf8_lossy(&said).contains("-> 8080") {
            let n = tokio::time::timeout(WAIT, stdout.read(&mut buf))
                .await
                .expect("kubectl port-forward listening in time")
                .unwrap();
            assert!(
                n > 0,
                "port-forward ended: {}",
                String::from_utf8_lossy(&said)
            );
            said.extend_from_slice(&buf[..n]);
        }
        for _ in 0..2 {
            let mut c = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
            c.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                .await
                .unwrap();
            let mut body = Vec::new();
            tokio::time::timeout(WAIT, c.read_to_end(&mut body))
                .await
                .expect("an answer through the forward")
                .unwrap();
            let body = String::from_utf8_lossy(&body);
            assert!(body.ends_with("hello\n"), "{body}");
        }
        child.kill().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    });
}

#[test]
fn a_terminal_over_websocket_follows_resizes() {
    if skip() || plugins_missing() {
        return;
    }
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let p = Pods::start("t");
    runtime().block_on(async {
        let w = world(&p).await;
        let mut rt = w.rt.clone();
        let url = rt
            .exec(cri::ExecRequest {
                container_id: w.containers["app"].clone(),
                cmd: vec!["sh".into()],
                tty: true,
                stdin: true,
                stdout: true,
                stderr: false,
            })
            .await
            .unwrap()
            .into_inner()
            .url;
        let mut req = url
            .replacen("http://", "ws://", 1)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        let tcp = TcpStream::connect(req.uri().authority().unwrap().as_str())
            .await
            .unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        let mut resize = vec![4u8];
        resize.extend_from_slice(br#"{"Width":123,"Height":45}"#);
        ws.send(Message::Binary(resize.into())).await.unwrap();
        let mut input = vec![0u8];
        input.extend_from_slice(b"stty size; exit 5\n");
        ws.send(Message::Binary(input.into())).await.unwrap();
        let mut stdout = Vec::new();
        let mut status = Vec::new();
        loop {
            let msg = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("output in time");
            match msg {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => match b[0] {
                    1 => stdout.extend_from_slice(&b[1..]),
                    3 => status.extend_from_slice(&b[1..]),
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&stdout);
        assert!(text.contains("45 123"), "{text:?}");
        let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(status["status"], "Failure", "{status}");
        assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
        assert_eq!(status["details"]["causes"][0]["message"], "5", "{status}");

        // Bad requests: no such container, nothing to stream, a stopped pod's port.
        let err = rt
            .exec(cri::ExecRequest {
                container_id: "nosuch".into(),
                cmd: vec!["true".into()],
                stdout: true,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        let err = rt
            .exec(cri::ExecRequest {
                container_id: w.containers["app"].clone(),
                cmd: vec!["true".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    });
}
