//! Lifecycle commands: stop/restart, kill, rm, pause/unpause, rename and wait.

use anyhow::Result;
use berth_api::client::{empty_body, encode_query};
use hyper::Method;

use crate::{connect, status};

use super::streams::wait_status;
use super::{KillOpts, NamesOpts, RenameOpts, RmOpts, StopOpts};

pub async fn stop(host: &str, o: &StopOpts, restart: bool) -> Result<i32> {
    let client = connect(host).await?;
    let mut q = Vec::new();
    if let Some(s) = &o.signal {
        q.push(("signal", s.clone()));
    }
    if let Some(t) = o.time {
        q.push(("t", t.to_string()));
    }
    let q = encode_query(&q);
    let verb = if restart { "restart" } else { "stop" };
    crate::batch::each(&client, &o.containers, false, |n| {
        (Method::POST, format!("/containers/{n}/{verb}"), q.clone())
    })
    .await
}

pub async fn kill(host: &str, o: &KillOpts) -> Result<i32> {
    let client = connect(host).await?;
    let q = match &o.signal {
        Some(s) => encode_query(&[("signal", s)]),
        None => String::new(),
    };
    crate::batch::each(&client, &o.containers, false, |n| {
        (Method::POST, format!("/containers/{n}/kill"), q.clone())
    })
    .await
}

pub async fn rm(host: &str, o: &RmOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut q = Vec::new();
    if o.force {
        q.push(("force", "1"));
    }
    if o.volumes {
        q.push(("v", "1"));
    }
    if o.link {
        q.push(("link", "1"));
    }
    let q = encode_query(&q);
    // docker rm -f of a missing container is no error; a name loses its slashes at either end
    // (`rm --link /web/db`) as the docker CLI's do.
    crate::batch::each(&client, &o.containers, o.force, |n| {
        let n = n.trim_matches('/');
        (Method::DELETE, format!("/containers/{n}"), q.clone())
    })
    .await
}

pub async fn simple(host: &str, o: &NamesOpts, verb: &str) -> Result<i32> {
    let client = connect(host).await?;
    crate::batch::each(&client, &o.containers, false, |n| {
        (
            Method::POST,
            format!("/containers/{n}/{verb}"),
            String::new(),
        )
    })
    .await
}

pub async fn rename(host: &str, o: &RenameOpts) -> Result<i32> {
    let client = connect(host).await?;
    client
        .call(
            Method::POST,
            &format!("/containers/{}/rename", o.container),
            &encode_query(&[("name", &o.new_name)]),
        )
        .await?;
    Ok(0)
}

pub async fn wait(host: &str, o: &NamesOpts) -> Result<i32> {
    let client = connect(host).await?;
    let mut failed = false;
    for n in &o.containers {
        let r = async {
            let resp = client
                .request(
                    Method::POST,
                    &format!("/containers/{n}/wait"),
                    "",
                    &[],
                    empty_body(),
                )
                .await?;
            wait_status(resp).await
        }
        .await;
        match r {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(status(1, None));
    }
    Ok(0)
}
