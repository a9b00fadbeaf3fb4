//! `berth exec`: run a command in a running container.

use std::io::IsTerminal;

use anyhow::Result;
use berth_api::client::{Client, ClientError};
use berth_api::models::ExecConfig;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::connect;

use super::streams::{check_tty, pump_output, watch_resize, Attached, Input};
use super::{env_list, ExecOpts};

pub async fn exec(host: &str, o: &ExecOpts) -> Result<i32> {
    let client = connect(host).await?;
    let container = &o.args[0];
    let cmd = o.args[1..].to_vec();
    if !o.detach {
        check_tty(o.interactive, o.tty)?;
    }
    let info: Value = client
        .get_json(&format!("/containers/{container}/json"), "")
        .await?;
    let _ = info;
    let stdin = o.interactive && !o.detach;
    let env = env_list(&o.env, &o.env_file)?;
    let console = if o.tty && !client_version_below(&client, "1.42") {
        crate::term::size().map(|(r, c)| vec![r as usize, c as usize])
    } else {
        None
    };
    let config = ExecConfig {
        user: Some(o.user.clone().unwrap_or_default()),
        privileged: Some(o.privileged),
        tty: Some(o.tty),
        attach_stdin: Some(stdin),
        attach_stderr: Some(!o.detach),
        attach_stdout: Some(!o.detach),
        detach_keys: Some(String::new()),
        env: (!env.is_empty()).then_some(env),
        working_dir: Some(o.workdir.clone().unwrap_or_default()),
        cmd: Some(cmd),
        console_size: console.clone(),
    };
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "Id")]
        id: String,
    }
    let created: Id = client
        .json(
            Method::POST,
            &format!("/containers/{container}/exec"),
            "",
            Some(&config),
        )
        .await?;
    let exec_id = created.id;
    let mut start = json!({"Detach": o.detach, "Tty": o.tty});
    if let Some(c) = console {
        start["ConsoleSize"] = json!(c);
    }
    if o.detach {
        client
            .json::<Value>(
                Method::POST,
                &format!("/exec/{exec_id}/start"),
                "",
                Some(&start),
            )
            .await
            .or_else(|e| match e {
                ClientError::Json(_) => Ok(Value::Null),
                e => Err(e),
            })?;
        return Ok(0);
    }
    let hj = client
        .hijack(&format!("/exec/{exec_id}/start"), "", Some(&start))
        .await?;
    let (reader, mut writer) = hj.into_split();
    let raw = if o.tty && stdin && std::io::stdin().is_terminal() {
        Some(crate::term::RawMode::enable()?)
    } else {
        None
    };
    let input = if stdin {
        Some(Input::spawn(writer, o.tty))
    } else {
        let _ = writer.shutdown().await;
        None
    };
    let output = tokio::spawn(pump_output(reader, o.tty));
    if o.tty {
        watch_resize(client.clone(), format!("/exec/{exec_id}/resize"));
    }
    let attached = Attached {
        output,
        input,
        _raw: raw,
    };
    if attached.finish().await {
        return Ok(0);
    }
    let info: Value = client
        .get_json(&format!("/exec/{exec_id}/json"), "")
        .await?;
    Ok(info["ExitCode"].as_i64().unwrap_or(0) as i32)
}

fn client_version_below(client: &Client, v: &str) -> bool {
    berth_api::client::version_less(client.api_version(), v)
}
