#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! The Kubernetes Python client's WebSocket exec client (`kubernetes.stream.ws_client`, the
//! one behind `kubernetes.stream.stream`) against the server: v5 with stdin closed, and the
//! exit code it reads from the error channel.

mod common;

use std::process::Stdio;

use berth_streaming::{Config, ExecRequest};
use common::*;

fn python_has_kubernetes() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import kubernetes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn kubernetes_python_client_execs() {
    if !python_has_kubernetes() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the Python kubernetes client is missing (pip install kubernetes)"
        );
        eprintln!("skipped: no Python kubernetes client");
        return;
    }
    let (server, _fake) = server(Config::default()).await;
    let url = server
        .get_exec(ExecRequest {
            container_id: "c1".into(),
            cmd: vec!["echo".into(), "7".into()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        })
        .unwrap();
    let script = r#"
import sys
from kubernetes.client import Configuration
from kubernetes.stream.ws_client import WSClient, get_websocket_url
c = Configuration()
ws = WSClient(c, get_websocket_url(sys.argv[1]), headers=None, capture_all=True, binary=True)
print("protocol", ws.subprotocol)
ws.write_stdin(b"from python")
ws.close_channel(0)
ws.run_forever(timeout=15)
print("stdout", ws.read_stdout(timeout=1))
print("stderr", ws.read_stderr(timeout=1))
print("returncode", ws.returncode)
"#;
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("python3")
            .args(["-c", script, &url])
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("protocol v5.channel.k8s.io"), "{stdout}");
    assert!(stdout.contains("stdout b'from python'"), "{stdout}");
    assert!(stdout.contains("stderr b'err\\n'"), "{stdout}");
    assert!(stdout.contains("returncode 7"), "{stdout}");
}
