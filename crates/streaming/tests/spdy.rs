#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too
//! Exec, attach and port forwarding over SPDY/3.1, driven by the test's own SPDY client.

mod common;

use std::time::Duration;

use berth_streaming::{Config, ExecRequest, PortForwardRequest};
use common::*;
use tokio::io::AsyncWriteExt;

fn exec(cmd: &[&str], stdin: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "c1".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin,
        stdout: true,
        stderr: !tty,
    }
}

async fn upgrade(
    server: &berth_streaming::Server,
    url: &str,
    protocol: &str,
) -> (u16, String, Spdy) {
    let (status, head, s) = http_upgrade(
        server.local_addr(),
        &path_of(url),
        &[
            ("Connection", "Upgrade"),
            ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", protocol),
        ],
    )
    .await;
    (status, head, Spdy::new(s))
}

/// Runs `echo CODE` with stdin "hello" and returns (stdout, stderr, error stream).
async fn echo_session(code: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (server, _fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["echo", code], true, false)).unwrap();
    assert!(url.starts_with(&format!("http://{}/exec/", server.local_addr())));
    let (status, head, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    assert_eq!(status, 101, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: v4.channel.k8s.io"),
        "{head}"
    );
    assert!(head.contains("SPDY/3.1"), "{head}");
    c.syn_stream(1, &[("streamtype", "error")], false).await;
    c.syn_stream(3, &[("streamtype", "stdin")], false).await;
    c.syn_stream(5, &[("streamtype", "stdout")], false).await;
    c.syn_stream(7, &[("streamtype", "stderr")], false).await;
    c.data(3, b"hel", false).await;
    c.data(3, b"lo", true).await;
    let mut got = Collected::default();
    c.collect_until(&mut got, |c| c.goaway).await;
    assert_eq!(got.replies, vec![1, 3, 5, 7]);
    for id in [1, 5, 7] {
        assert!(got.fin.contains(&id), "stream {id} half-closed: {got:?}");
    }
    assert!(
        got.window_updates >= 2,
        "stdin's bytes open the windows again"
    );
    (
        got.data.remove(&5).unwrap_or_default(),
        got.data.remove(&7).unwrap_or_default(),
        got.data.remove(&1).unwrap_or_default(),
    )
}

#[tokio::test]
async fn exec_exit_zero_reports_success() {
    let (out, err, status) = echo_session("0").await;
    assert_eq!(out, b"hello");
    assert_eq!(err, b"err\n");
    assert_eq!(status, br#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn exec_exit_code_is_on_the_error_stream() {
    let (out, _, status) = echo_session("3").await;
    assert_eq!(out, b"hello");
    let v: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["reason"], "NonZeroExitCode");
    assert_eq!(v["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(v["details"]["causes"][0]["message"], "3");
}

#[tokio::test]
async fn v2_writes_failures_as_text_and_success_as_nothing() {
    let (server, _fake) = server(Config::default()).await;
    for (code, want) in [("0", ""), ("4", "exit code 4")] {
        let url = server
            .get_exec(exec(&["echo", code], false, false))
            .unwrap();
        let (status, _, mut c) = upgrade(&server, &url, "v2.channel.k8s.io").await;
        assert_eq!(status, 101);
        c.syn_stream(1, &[("streamtype", "error")], false).await;
        c.syn_stream(3, &[("streamtype", "stdout")], false).await;
        c.syn_stream(5, &[("streamtype", "stderr")], false).await;
        let mut got = Collected::default();
        c.collect_until(&mut got, |c| c.goaway).await;
        let text = String::from_utf8(got.data.remove(&1).unwrap_or_default()).unwrap();
        assert!(
            text.contains(want) && (want.is_empty() == text.is_empty()),
            "{text:?}"
        );
    }
}

#[tokio::test]
async fn tty_resizes_reach_the_engine() {
    let (server, fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["tty"], true, true)).unwrap();
    let (status, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    assert_eq!(status, 101);
    c.syn_stream(1, &[("streamtype", "error")], false).await;
    c.syn_stream(3, &[("streamtype", "stdin")], false).await;
    c.syn_stream(5, &[("streamtype", "stdout")], false).await;
    c.syn_stream(7, &[("streamtype", "resize")], false).await;
    c.data(7, b"{\"Width\":80,\"Height\":24}\n", false).await;
    let mut got = Collected::default();
    c.collect_until(&mut got, |c| {
        c.data.get(&5).is_some_and(|d| d.ends_with(b"80x24\n"))
    })
    .await;
    // One message split over two frames.
    c.data(7, b"{\"Width\":100,", false).await;
    c.data(7, b"\"Height\":50}\n", false).await;
    c.collect_until(&mut got, |c| {
        c.data.get(&5).is_some_and(|d| d.ends_with(b"100x50\n"))
    })
    .await;
    c.data(3, b"", true).await;
    c.collect_until(&mut got, |c| c.goaway).await;
    assert_eq!(got.data[&5], b"80x24\n100x50\n");
    assert_eq!(got.data[&1], br#"{"metadata":{},"status":"Success"}"#);
    let sizes = fake.resizes.lock().unwrap().clone();
    assert_eq!(sizes.len(), 2);
    assert_eq!((sizes[1].width, sizes[1].height), (100, 50));
}

#[tokio::test]
async fn output_past_the_window_reaches_a_client_without_flow_control() {
    // Go's spdystream (kubectl, crictl) never sends WINDOW_UPDATE.
    let (server, _fake) = server(Config::default()).await;
    let url = server
        .get_exec(exec(&["big", "300000"], false, false))
        .unwrap();
    let (_, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    c.syn_stream(1, &[("streamtype", "error")], false).await;
    c.syn_stream(3, &[("streamtype", "stdout")], false).await;
    c.syn_stream(5, &[("streamtype", "stderr")], false).await;
    let mut got = Collected::default();
    c.collect_until(&mut got, |c| c.goaway).await;
    assert_eq!(got.data[&3].len(), 300000);
}

#[tokio::test]
async fn a_client_keeping_windows_is_held_to_them() {
    let (server, _fake) = server(Config::default()).await;
    let url = server
        .get_exec(exec(&["big", "5000"], false, false))
        .unwrap();
    let (_, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    // SETTINGS: INITIAL_WINDOW_SIZE (7) = 1000.
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 7]);
    body.extend_from_slice(&1000u32.to_be_bytes());
    c.s.write_all(&control(4, 0, &body)).await.unwrap();
    c.syn_stream(1, &[("streamtype", "error")], false).await;
    c.syn_stream(3, &[("streamtype", "stdout")], false).await;
    c.syn_stream(5, &[("streamtype", "stderr")], false).await;
    let mut got = Collected::default();
    c.collect_until(&mut got, |c| {
        c.data.get(&3).is_some_and(|d| d.len() >= 1000)
    })
    .await;
    assert_eq!(got.data[&3].len(), 1000);
    // Nothing more until the window opens.
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        c.collect_until(&mut got, |_| false),
    )
    .await;
    assert_eq!(got.data[&3].len(), 1000, "data past the window");
    let mut wu = 3u32.to_be_bytes().to_vec();
    wu.extend_from_slice(&100_000u32.to_be_bytes());
    c.s.write_all(&control(9, 0, &wu)).await.unwrap();
    c.collect_until(&mut got, |c| c.goaway).await;
    assert_eq!(got.data[&3].len(), 5000);
}

#[tokio::test]
async fn tokens_are_single_use() {
    let (server, _fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["echo", "0"], false, false)).unwrap();
    // An unknown protocol: 403 with the accepted ones, as kubelet.
    let (status, head, _) = upgrade(&server, &url, "v9.channel.k8s.io").await;
    assert_eq!(status, 403, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("x-accepted-stream-protocol-versions: v4.channel.k8s.io"),
        "{head}"
    );
    let (status, _, _) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    assert_eq!(status, 404);
    // A session that worked is not repeatable either.
    let url = server.get_exec(exec(&["echo", "0"], false, false)).unwrap();
    let (status, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    assert_eq!(status, 101);
    c.syn_stream(1, &[("streamtype", "error")], false).await;
    c.syn_stream(3, &[("streamtype", "stdout")], false).await;
    c.syn_stream(5, &[("streamtype", "stderr")], false).await;
    c.collect_until(&mut Collected::default(), |c| c.goaway)
        .await;
    let (status, _, _) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    assert_eq!(status, 404);
    // No protocol header at all.
    let url = server.get_exec(exec(&["echo", "0"], false, false)).unwrap();
    let (status, _, _) = http_upgrade(
        server.local_addr(),
        &path_of(&url),
        &[("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")],
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn tokens_expire() {
    let (server, _fake) = server(Config {
        request_ttl: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    let url = server.get_exec(exec(&["echo", "0"], false, false)).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (status, _, _) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn requests_are_checked_as_kubelet() {
    let (server, _fake) = server(Config::default()).await;
    let mut bad = exec(&["sh"], false, true);
    bad.stderr = true;
    assert!(server.get_exec(bad).is_err());
    let mut none = exec(&["sh"], false, false);
    none.stdout = false;
    none.stderr = false;
    assert!(server.get_exec(none).is_err());
    assert!(server
        .get_exec(ExecRequest {
            container_id: String::new(),
            ..exec(&["sh"], true, false)
        })
        .is_err());
}

#[tokio::test]
async fn missing_streams_time_out() {
    let (server, fake) = server(Config {
        stream_creation_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let url = server.get_exec(exec(&["echo", "0"], true, false)).unwrap();
    let (_, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    c.syn_stream(1, &[("streamtype", "error")], false).await;
    let mut got = Collected::default();
    c.collect_until(&mut got, |c| c.goaway).await;
    assert!(got.goaway);
    assert!(
        fake.execs.lock().unwrap().is_empty(),
        "the command never ran"
    );
}

async fn hostile(bytes: Vec<u8>) {
    let (server, _fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["echo", "0"], true, false)).unwrap();
    let (_, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    c.s.write_all(&bytes).await.unwrap();
    let mut got = Collected::default();
    c.collect_until(&mut got, |_| false).await;
    assert!(got.goaway, "a GOAWAY before the close");
    // The server goes on serving.
    let url = server.get_exec(exec(&["echo", "0"], false, false)).unwrap();
    let (status, _, _) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    assert_eq!(status, 101);
}

#[tokio::test]
async fn huge_frame_closes_the_connection() {
    hostile(vec![0, 0, 0, 1, 0, 0xff, 0xff, 0xff]).await;
    hostile(vec![0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff]).await;
}

#[tokio::test]
async fn bad_compression_closes_the_connection() {
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 6]);
    body.extend_from_slice(b"\x78\xbbnot deflate at all");
    hostile(control(1, 0, &body)).await;
}

#[tokio::test]
async fn decompression_bomb_closes_the_connection() {
    let mut z = Zout::default();
    let mut block = 1u32.to_be_bytes().to_vec();
    block.extend_from_slice(&(1u32 << 20).to_be_bytes());
    block.extend_from_slice(&vec![b'a'; 1 << 20]);
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 6]);
    body.extend_from_slice(&z.compress(&block));
    assert!(body.len() < 64 * 1024);
    hostile(control(1, 0, &body)).await;
}

#[tokio::test]
async fn pings_are_answered() {
    let (server, _fake) = server(Config::default()).await;
    let url = server.get_exec(exec(&["echo", "0"], true, false)).unwrap();
    let (_, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    c.s.write_all(&control(6, 0, &7u32.to_be_bytes()))
        .await
        .unwrap();
    match c.read().await {
        Some(In::Control { kind: 6, body, .. }) => assert_eq!(body, 7u32.to_be_bytes()),
        other => panic!("{other:?}"),
    }
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
    let (status, head, mut c) = upgrade(&server, &url, "portforward.k8s.io").await;
    assert_eq!(status, 101, "{head}");
    for (req, port, base) in [("0", "80", 1), ("1", "81", 5), ("2", "1", 9)] {
        c.syn_stream(
            base,
            &[("streamtype", "error"), ("port", port), ("requestid", req)],
            false,
        )
        .await;
        c.syn_stream(
            base + 2,
            &[("streamtype", "data"), ("port", port), ("requestid", req)],
            false,
        )
        .await;
    }
    // A stream without a port is refused.
    c.syn_stream(13, &[("streamtype", "data")], false).await;
    let mut got = Collected::default();
    c.collect_until(&mut got, |c| {
        c.data.get(&3).is_some_and(|d| d == b"port 80\n")
            && c.data.get(&7).is_some_and(|d| d == b"port 81\n")
            && c.fin.contains(&9)
            && !c.resets.is_empty()
    })
    .await;
    assert_eq!(got.resets, vec![(13, 3)]);
    let err: serde_json::Value = serde_json::from_slice(&got.data[&9]).unwrap();
    assert_eq!(err["closeConnection"], true);
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    c.data(3, b"to 80", true).await;
    c.data(7, b"to 81", true).await;
    c.collect_until(&mut got, |c| {
        [3, 7, 1, 5].iter().all(|id| c.fin.contains(id))
    })
    .await;
    assert_eq!(got.data[&3], b"port 80\nto 80");
    assert_eq!(got.data[&7], b"port 81\nto 81");
}

#[tokio::test]
async fn finished_port_forwards_do_not_hold_streams() {
    // 200 pairs whose port closes at once while the client never half-closes them: more
    // than the open-stream bound if finished pairs were kept.
    let (server, _fake) = server(Config::default()).await;
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "p1".into(),
            ports: vec![],
        })
        .unwrap();
    let (status, _, mut c) = upgrade(&server, &url, "portforward.k8s.io").await;
    assert_eq!(status, 101);
    let mut got = Collected::default();
    for i in 0..200u32 {
        let (err, data, req) = (4 * i + 1, 4 * i + 3, i.to_string());
        c.syn_stream(
            err,
            &[("streamtype", "error"), ("port", "1"), ("requestid", &req)],
            false,
        )
        .await;
        c.syn_stream(
            data,
            &[("streamtype", "data"), ("port", "1"), ("requestid", &req)],
            false,
        )
        .await;
        c.collect_until(&mut got, |c| c.fin.contains(&err) || !c.resets.is_empty())
            .await;
        assert!(got.resets.is_empty(), "pair {i}: {:?}", got.resets);
    }
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let (server, _fake) = server(Config {
        stream_idle_timeout: Duration::from_millis(400),
        ..Config::default()
    })
    .await;
    let url = server.get_exec(exec(&["tty"], true, true)).unwrap();
    let (_, _, mut c) = upgrade(&server, &url, "v4.channel.k8s.io").await;
    c.syn_stream(1, &[("streamtype", "error")], false).await;
    c.syn_stream(3, &[("streamtype", "stdin")], false).await;
    c.syn_stream(5, &[("streamtype", "stdout")], false).await;
    c.syn_stream(7, &[("streamtype", "resize")], false).await;
    // Pings keep it open past the timeout...
    let start = std::time::Instant::now();
    let mut got = Collected::default();
    while start.elapsed() < Duration::from_millis(1000) {
        c.s.write_all(&control(6, 0, &1u32.to_be_bytes()))
            .await
            .unwrap();
        match c.read().await {
            Some(In::Control { kind: 6, .. }) => {}
            Some(In::Control { kind: 2, .. }) => {}
            other => panic!("closed while active: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...and silence closes it.
    c.collect_until(&mut got, |_| false).await;
    assert!(got.goaway);
    assert!(start.elapsed() < WAIT);
}
