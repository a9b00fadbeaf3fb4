#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Exec and port forwarding over WebSocket (`v4`/`v5.channel.k8s.io`), with tokio-tungstenite
//! as the client.

mod common;

use berth_streaming::{AttachRequest, Config, ExecRequest, PortForwardRequest};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

async fn connect(url: &str, protocol: Option<&str>) -> Result<(Ws, Option<String>), u16> {
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url.as_str().into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let tcp = TcpStream::connect(req.uri().authority().unwrap().as_str())
        .await
        .unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, resp)) => {
            let chosen = resp
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_string());
            Ok((ws, chosen))
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// Every message until the server closes, as (channel, payload).
async fn drain(ws: &mut Ws) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("message in time");
        match msg {
            Some(Ok(Message::Binary(b))) => out.push((b[0], b[1..].to_vec())),
            Some(Ok(Message::Text(t))) => {
                use base64::Engine as _;
                let t = t.as_bytes();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(&t[1..])
                    .unwrap();
                out.push((t[0] - b'0', data));
            }
            Some(Ok(Message::Pong(p))) => out.push((u8::MAX, p.to_vec())),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return out,
            Some(Ok(_)) => {}
        }
    }
}

fn channel(msgs: &[(u8, Vec<u8>)], ch: u8) -> Vec<u8> {
    msgs.iter()
        .filter(|(c, _)| *c == ch)
        .flat_map(|(_, d)| d.clone())
        .collect()
}

fn exec(cmd: &[&str], stdin: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin,
        stdout: true,
        stderr: true,
    }
}

#[tokio::test]
async fn v4_exec_reports_exit_codes() {
    let (server, _fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["big", "10"], false)).unwrap();
    let (mut ws, chosen) = connect(&url, Some("v4.channel.k8s.io")).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("v4.channel.k8s.io"));
    let msgs = drain(&mut ws).await;
    // First an empty message on stdout: connected.
    assert_eq!(msgs[0], (1, vec![]));
    assert_eq!(channel(&msgs, 1), b"xxxxxxxxxx");
    assert_eq!(channel(&msgs, 3), br#"{"metadata":{},"status":"Success"}"#);

    let url = server.get_exec(exec(&["echo", "5"], false)).unwrap();
    let (mut ws, _) = connect(&url, Some("v4.channel.k8s.io")).await.unwrap();
    let msgs = drain(&mut ws).await;
    assert_eq!(channel(&msgs, 2), b"err\n");
    let v: serde_json::Value = serde_json::from_slice(&channel(&msgs, 3)).unwrap();
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(v["details"]["causes"][0]["message"], "5");
}

#[tokio::test]
async fn v5_closes_stdin() {
    let (server, _fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["echo", "0"], true)).unwrap();
    let (mut ws, chosen) = connect(&url, Some("v5.channel.k8s.io, v4.channel.k8s.io"))
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("v5.channel.k8s.io"));
    ws.send(Message::binary(b"\x00hello ".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(b"\x00world".to_vec()))
        .await
        .unwrap();
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    ws.send(Message::binary(vec![255, 0])).await.unwrap();
    let msgs = drain(&mut ws).await;
    assert_eq!(channel(&msgs, u8::MAX), b"are you there");
    assert_eq!(channel(&msgs, 1), b"hello world");
    assert_eq!(channel(&msgs, 2), b"err\n");
    assert_eq!(channel(&msgs, 3), br#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn base64_variant() {
    let (server, _fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["big", "3"], false)).unwrap();
    let (mut ws, chosen) = connect(&url, Some("v4.base64.channel.k8s.io"))
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("v4.base64.channel.k8s.io"));
    let msgs = drain(&mut ws).await;
    assert_eq!(channel(&msgs, 1), b"xxx");
    assert_eq!(channel(&msgs, 3), br#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn unknown_subprotocol_is_refused_and_tokens_are_single_use() {
    let (server, _fake) = server(Config::default()).await;
    let url = server
        .get_attach(AttachRequest {
            container_id: "c1".into(),
            stdout: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        connect(&url, Some("v9.channel.k8s.io")).await.err(),
        Some(403)
    );
    assert_eq!(
        connect(&url, Some("v4.channel.k8s.io")).await.err(),
        Some(404)
    );
}

#[tokio::test]
async fn port_forward_two_ports() {
    let (server, _fake) = server(Config::default()).await;
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "p1".into(),
            ports: vec![],
        })
        .unwrap();
    let (mut ws, _) = connect(&format!("{url}?port=80&port=81"), Some("v4.channel.k8s.io"))
        .await
        .unwrap();
    let mut seen: Vec<(u8, Vec<u8>)> = Vec::new();
    let want = |seen: &[(u8, Vec<u8>)], ch: u8, s: &[u8]| channel(seen, ch).ends_with(s);
    while !(want(&seen, 0, b"port 80\n") && want(&seen, 2, b"port 81\n")) {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => seen.push((b[0], b[1..].to_vec())),
            other => panic!("{other:?}"),
        }
    }
    // The first message of each channel is its port, little endian.
    for (ch, port) in [(0u8, 80u16), (1, 80), (2, 81), (3, 81)] {
        let first = seen.iter().find(|(c, _)| *c == ch).unwrap();
        assert_eq!(first.1, port.to_le_bytes());
    }
    ws.send(Message::binary(b"\x00ping80".to_vec()))
        .await
        .unwrap();
    ws.send(Message::binary(b"\x02ping81".to_vec()))
        .await
        .unwrap();
    while !(want(&seen, 0, b"ping80") && want(&seen, 2, b"ping81")) {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(b))) => seen.push((b[0], b[1..].to_vec())),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let (server, _fake) = server(Config {
        stream_idle_timeout: std::time::Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut req = exec(&["tty"], true);
    req.tty = true;
    req.stderr = false;
    let url = server.get_exec(req).unwrap();
    let (mut ws, _) = connect(&url, Some("v5.channel.k8s.io")).await.unwrap();
    let start = std::time::Instant::now();
    let msgs = drain(&mut ws).await;
    // Closed (the drain ended in time) after the idle time, with no output but the first
    // empty message.
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(msgs, vec![(1, vec![])]);
}
