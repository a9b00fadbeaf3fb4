//! `POST /commit`: the container's changes (the upper directory of its snapshot) as a new image
//! on top of its image, with the container's config and the `changes` (Dockerfile instructions
//! as `docker commit -c` sends them) applied.

use berth_api::models::EventMessageTypeEnum;
use berth_image::commit::CommitOptions;
use berth_image::reference::Reference;
use serde_json::{json, Map, Value};

use crate::error::{EngineError, Result};
use crate::Engine;

/// What `POST /commit` asks.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub container: String,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
    /// One Dockerfile instruction per entry (an entry may hold several lines).
    pub changes: Vec<String>,
    pub pause: bool,
}

/// The image config fields a commit takes from the container's config.
const CARRIED: &[&str] = &[
    "User",
    "ExposedPorts",
    "Env",
    "Cmd",
    "Healthcheck",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "OnBuild",
    "Labels",
    "StopSignal",
    "Shell",
];

impl Engine {
    /// Commits the container; returns the new image id (`sha256:...`).
    pub fn commit(&self, req: &CommitRequest) -> Result<String> {
        let name = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => {
                let text = match req.tag.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.to_string(),
                };
                Some(text.parse::<Reference>().map_err(|e| {
                    EngineError::InvalidParameter(format!("invalid reference format: {e}"))
                })?)
            }
            None => None,
        };
        // Parsed first: a bad change fails before anything is paused or written.
        let mut changes = Vec::new();
        for change in &req.changes {
            for line in change.lines().map(str::trim).filter(|l| !l.is_empty()) {
                changes.push(parse_change(line)?);
            }
        }
        let rootfs = self.rootfs(&req.container)?;
        let c = rootfs.container.clone();
        let manifest = c
            .image_manifest
            .parse()
            .map_err(|e| EngineError::internal("the container's image manifest", e))?;
        let image_config = self
            .images
            .load(&manifest, None)
            .map(|i| i.config["config"].clone())
            .unwrap_or(json!({}));
        let mut config = Map::new();
        if let Value::Object(m) = &image_config {
            config.extend(m.clone());
        }
        let container_config =
            serde_json::to_value(crate::wire::spec::config_model(&c.config)).unwrap_or(json!({}));
        for key in CARRIED {
            match &container_config[*key] {
                Value::Null => {}
                v => {
                    config.insert((*key).to_string(), v.clone());
                }
            }
        }
        for change in changes {
            change.apply(&mut config);
        }
        let upper = self
            .images
            .store
            .snapshots
            .upper_dir(&format!("container-{}", c.id))
            .map_err(|e| EngineError::internal("the container's changes", e))?;
        let runtime = self.driver(&c);
        let paused = req.pause
            && c.state.status == crate::container::Status::Running
            && runtime.as_ref().is_ok_and(|r| r.pause(&c.id).is_ok());
        let mut top = Map::new();
        top.insert("container".into(), json!(c.id));
        top.insert("container_config".into(), container_config);
        let opts = CommitOptions {
            comment: req.comment.clone(),
            author: req.author.clone(),
            config,
            top,
            ids: self.remap_of(&c).map(crate::userns::Remap::to_container),
        };
        let result = berth_image::commit::commit(
            &self.images.store,
            &manifest,
            &upper,
            name.as_ref(),
            &opts,
        );
        if let (true, Ok(runtime)) = (paused, &runtime) {
            if let Err(e) = runtime.resume(&c.id) {
                tracing::warn!(container = %c.id, error = %e, "resume after commit");
            }
        }
        drop(rootfs);
        let id = result.map_err(|e| EngineError::internal("commit", e))?;
        self.events.publish(
            EventMessageTypeEnum::CONTAINER,
            "commit",
            &c.id,
            [
                ("name".to_string(), c.name.clone()),
                ("comment".to_string(), req.comment.clone()),
                ("imageID".to_string(), id.to_string()),
            ]
            .into(),
        );
        Ok(id.to_string())
    }
}

/// One instruction of `changes`.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Set(&'static str, Value),
    Env(Vec<(String, String)>),
    Labels(Vec<(String, String)>),
    Expose(Vec<String>),
    Volumes(Vec<String>),
    OnBuild(String),
}

impl Change {
    fn apply(self, config: &mut Map<String, Value>) {
        match self {
            Change::Set(k, v) => {
                config.insert(k.to_string(), v);
            }
            Change::Env(pairs) => {
                let mut env: Vec<String> = config
                    .get("Env")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match env
                        .iter()
                        .position(|e| e.split_once('=').map_or(e.as_str(), |p| p.0) == k)
                    {
                        Some(i) => env[i] = entry,
                        None => env.push(entry),
                    }
                }
                config.insert("Env".into(), json!(env));
            }
            Change::Labels(pairs) => {
                let Some(labels) = object_field(config, "Labels") else {
                    return;
                };
                for (k, v) in pairs {
                    labels.insert(k, json!(v));
                }
            }
            Change::Expose(ports) => {
                let Some(exposed) = object_field(config, "ExposedPorts") else {
                    return;
                };
                for p in ports {
                    let p = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    exposed.insert(p, json!({}));
                }
            }
            Change::Volumes(vols) => {
                let Some(volumes) = object_field(config, "Volumes") else {
                    return;
                };
                for v in vols {
                    volumes.insert(v, json!({}));
                }
            }
            Change::OnBuild(line) => {
                let mut list = config
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                list.push(json!(line));
                config.insert("OnBuild".into(), Value::Array(list));
            }
        }
    }
}

/// The object `config[key]`, made empty first if it is not an object.
fn object_field<'a>(
    config: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    if !config.get(key).is_some_and(Value::is_object) {
        config.insert(key.to_string(), json!({}));
    }
    config.get_mut(key).and_then(Value::as_object_mut)
}

/// `["a","b"]` (JSON form) or a shell command (`/bin/sh -c "..."`).
fn command(args: &str) -> Value {
    if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(args) {
        if a.iter().all(Value::is_string) {
            return Value::Array(a);
        }
    }
    json!(["/bin/sh", "-c", args])
}

/// `k=v k2="v 2"` pairs, or the old `k v` form.
fn pairs(args: &str, what: &str) -> Result<Vec<(String, String)>> {
    let words = split_words(args);
    if words.is_empty() {
        return Err(EngineError::InvalidParameter(format!(
            "{what} requires at least one argument"
        )));
    }
    if !words[0].contains('=') {
        let (k, v) = args
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((args.trim(), ""));
        return Ok(vec![(k.to_string(), unquote(v.trim()))]);
    }
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| {
                    EngineError::InvalidParameter(format!("{what} names can not be blank: {w}"))
                })
        })
        .collect()
}

fn unquote(s: &str) -> String {
    split_words(s).join(" ")
}

/// Words split on whitespace, with `"..."`, `'...'` and `\x` as a shell reads them.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(ch);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// One Dockerfile instruction of the kinds `docker commit --change` allows.
fn parse_change(line: &str) -> Result<Change> {
    let (instr, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let args = args.trim();
    let upper = instr.to_uppercase();
    Ok(match upper.as_str() {
        "CMD" => Change::Set("Cmd", command(args)),
        "ENTRYPOINT" => Change::Set("Entrypoint", command(args)),
        "SHELL" => match serde_json::from_str::<Value>(args) {
            Ok(v @ Value::Array(_)) => Change::Set("Shell", v),
            _ => {
                return Err(EngineError::InvalidParameter(
                    "SHELL requires the arguments to be in JSON form".into(),
                ))
            }
        },
        "ENV" => Change::Env(pairs(args, "ENV")?),
        "LABEL" => Change::Labels(pairs(args, "LABEL")?),
        "EXPOSE" => Change::Expose(split_words(args)),
        "VOLUME" => Change::Volumes(match serde_json::from_str::<Value>(args) {
            Ok(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => split_words(args),
        }),
        "USER" => Change::Set("User", json!(args)),
        "WORKDIR" => Change::Set("WorkingDir", json!(args)),
        "STOPSIGNAL" => Change::Set("StopSignal", json!(args)),
        "ONBUILD" => Change::OnBuild(args.to_string()),
        "HEALTHCHECK" if args.eq_ignore_ascii_case("NONE") => {
            Change::Set("Healthcheck", json!({"Test": ["NONE"]}))
        }
        _ => {
            return Err(EngineError::InvalidParameter(format!(
                "{instr} is not a valid change command"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_as_dockerfile_instructions() {
        assert_eq!(
            parse_change(r#"CMD ["cat","/x"]"#).unwrap(),
            Change::Set("Cmd", json!(["cat", "/x"]))
        );
        assert_eq!(
            parse_change("CMD echo hi").unwrap(),
            Change::Set("Cmd", json!(["/bin/sh", "-c", "echo hi"]))
        );
        assert_eq!(
            parse_change(r#"ENV A=1 B="two words""#).unwrap(),
            Change::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into())
            ])
        );
        assert_eq!(
            parse_change("env X hello world").unwrap(),
            Change::Env(vec![("X".into(), "hello world".into())])
        );
        assert!(parse_change("RUN true").is_err());
        let mut config = Map::new();
        config.insert("Env".into(), json!(["PATH=/bin", "A=0"]));
        parse_change("ENV A=1").unwrap().apply(&mut config);
        parse_change("EXPOSE 80").unwrap().apply(&mut config);
        assert_eq!(config["Env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}}));
    }
}
