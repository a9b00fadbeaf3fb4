//! `berth run`, `berth start` and `berth attach`: start a container and stay attached to it.

use anyhow::{bail, Result};
use berth_api::client::{empty_body, encode_query};
use hyper::Method;
use serde_json::Value;

use crate::{connect, status};

use super::create::{create_container, run_error};
use super::streams::{attach_streams, check_tty, proxy_signals, wait_status, watch_resize};
use super::{AttachOpts, RunOpts, StartOpts};

/// Maps a start error to docker's exit status by its text.
fn start_error_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

pub async fn run(host: &str, o: &RunOpts) -> Result<i32> {
    let c = &o.create;
    if !o.detach {
        check_tty(c.interactive, c.tty)?;
    }
    let client = connect(host).await.map_err(|e| run_error("run", e))?;
    let id = create_container(&client, c, o.detach)
        .await
        .map_err(|e| run_error("run", e))?;
    let (stdin, stdout, stderr) = if o.detach {
        (false, false, false)
    } else {
        let all = c.attach.is_empty();
        let has = |s: &str| all || c.attach.iter().any(|a| a.eq_ignore_ascii_case(s));
        (
            c.interactive && (all || has("stdin")),
            has("stdout"),
            has("stderr"),
        )
    };
    let attached = if stdin || stdout || stderr {
        Some(
            attach_streams(&client, &id, stdin, stdout, stderr, c.tty)
                .await
                .map_err(|e| run_error("run", e))?,
        )
    } else {
        None
    };
    let condition = if c.rm { "removed" } else { "next-exit" };
    let wait_resp = client
        .request(
            Method::POST,
            &format!("/containers/{id}/wait"),
            &encode_query(&[("condition", condition)]),
            &[],
            empty_body(),
        )
        .await
        .map_err(|e| run_error("run", e.into()))?;
    if let Err(e) = client
        .call(Method::POST, &format!("/containers/{id}/start"), "")
        .await
    {
        drop(attached);
        let code = start_error_code(&e.message());
        return Err(status(
            code,
            format!("berth: {e}\n\nRun 'berth run --help' for more information"),
        ));
    }
    if o.detach {
        drop(wait_resp);
        println!("{id}");
        return Ok(0);
    }
    if c.tty && stdin {
        watch_resize(client.clone(), format!("/containers/{id}/resize"));
    }
    if !c.tty {
        proxy_signals(client.clone(), id.clone());
    }
    let detached = match attached {
        Some(a) => a.finish().await,
        None => false,
    };
    if detached {
        return Ok(0);
    }
    let code = wait_status(wait_resp)
        .await
        .map_err(|e| status(125, format!("berth: {e:#}")))?;
    Ok(code)
}

pub async fn start(host: &str, o: &StartOpts) -> Result<i32> {
    let client = connect(host).await?;
    if o.attach || o.interactive {
        if o.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let name = &o.containers[0];
        let info: Value = client
            .get_json(&format!("/containers/{name}/json"), "")
            .await?;
        let id = info["Id"].as_str().unwrap_or(name).to_string();
        let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
        let open_stdin = info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
        let stdin = o.interactive && open_stdin;
        let attached = attach_streams(&client, &id, stdin, true, true, tty).await?;
        let wait_resp = client
            .request(
                Method::POST,
                &format!("/containers/{id}/wait"),
                "condition=next-exit",
                &[],
                empty_body(),
            )
            .await?;
        if let Err(e) = client
            .call(Method::POST, &format!("/containers/{id}/start"), "")
            .await
        {
            drop(attached);
            return Err(status(start_error_code(&e.message()), e.to_string()));
        }
        if tty && stdin {
            watch_resize(client.clone(), format!("/containers/{id}/resize"));
        }
        if !tty {
            proxy_signals(client.clone(), id.clone());
        }
        if attached.finish().await {
            return Ok(0);
        }
        return wait_status(wait_resp).await;
    }
    crate::batch::each(&client, &o.containers, false, |n| {
        (
            Method::POST,
            format!("/containers/{n}/start"),
            String::new(),
        )
    })
    .await
}

pub async fn attach_cmd(host: &str, o: &AttachOpts) -> Result<i32> {
    let client = connect(host).await?;
    let info: Value = client
        .get_json(&format!("/containers/{}/json", o.container), "")
        .await?;
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let id = info["Id"].as_str().unwrap_or(&o.container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !o.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    check_tty(stdin, tty)?;
    let attached = attach_streams(&client, &id, stdin, true, true, tty).await?;
    if tty && stdin {
        watch_resize(client.clone(), format!("/containers/{id}/resize"));
    }
    if !tty && o.sig_proxy {
        proxy_signals(client.clone(), id.clone());
    }
    if attached.finish().await {
        return Ok(0);
    }
    let info: Value = client
        .get_json(&format!("/containers/{id}/json"), "")
        .await?;
    Ok(info["State"]["ExitCode"].as_i64().unwrap_or(0) as i32)
}
