//! The event stream (`GET /events`): every container, image, volume and network action,
//! broadcast to listeners and kept in a short history for `since`; and dockerd's event filters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use berth_api::models::{EventActor, EventMessage, EventMessageTypeEnum};
use berth_api::query::Filters;
use tokio::sync::broadcast;

/// How many past events `since` can reach.
const HISTORY: usize = 1024;

/// The engine's event bus.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<EventMessage>,
    history: Arc<Mutex<VecDeque<EventMessage>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(256).0,
            history: Arc::new(Mutex::new(VecDeque::new())),
        }
    }
}

impl Events {
    /// Publishes an event about `id` of `kind` (`container`, `image`).
    pub fn publish(
        &self,
        kind: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attributes: HashMap<String, String>,
    ) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let event = EventMessage {
            typ: Some(kind),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(id.to_string()),
                attributes: Some(attributes),
            }),
            scope: Some(berth_api::models::EventMessageScopeEnum::LOCAL),
            time: Some(now.as_secs() as i64),
            time_nano: Some(now.as_nanos() as i64),
        };
        {
            let mut h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// How many streams listen (`NEventsListener` of `/info`).
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Past events (oldest first) and a receiver of the ones to come.
    pub fn subscribe(&self) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        (h.iter().cloned().collect(), self.tx.subscribe())
    }
}

/// Whether `e` passes `f`, as dockerd's `events.Filter` decides: `type`, `event` (exact, or a
/// prefix for `health_status`, `exec_create` and `exec_start`), `scope`, the objects by id
/// prefix or name (`container`, `daemon`, `plugin`, `volume`, `network`, `node`, `service`,
/// `secret`, `config`), `image` (by id or name, with or without tag), and `label`s of the
/// actor's attributes. Each key given must match; one of its values is enough.
pub fn matches(e: &EventMessage, f: &Filters) -> bool {
    let typ = e.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = e.action.as_deref().unwrap_or_default();
    let actor = e.actor.clone().unwrap_or_default();
    let id = actor.id.unwrap_or_default();
    let attrs = actor.attributes.unwrap_or_default();
    let scope = e.scope.map(|s| s.to_string()).unwrap_or_default();
    let exact = |key: &str, value: &str| {
        let wanted = f.get(key);
        wanted.is_empty() || wanted.iter().any(|w| w == value)
    };
    let fuzzy = |key: &str, value: &str| {
        let wanted = f.get(key);
        wanted.is_empty() || wanted.iter().any(|w| value.starts_with(w.as_str()))
    };
    // An object filter matches its kind's events by the actor's id or `name` attribute.
    let object = |key: &str| {
        let wanted = f.get(key);
        if wanted.is_empty() {
            return true;
        }
        let name = attrs.get("name").map(String::as_str).unwrap_or_default();
        wanted.iter().any(|w| {
            id.starts_with(w.as_str()) || (!name.is_empty() && name.starts_with(w.as_str()))
        })
    };
    let prefixed = f
        .get("event")
        .iter()
        .any(|v| matches!(v.as_str(), "health_status" | "exec_create" | "exec_start"));
    let event = if prefixed {
        fuzzy("event", action)
    } else {
        exact("event", action)
    };
    let image = {
        let wanted = f.get("image");
        let attr = if typ == "image" { "name" } else { "image" };
        let name = attrs.get(attr).map(String::as_str).unwrap_or_default();
        wanted.is_empty()
            || [id.as_str(), name, strip_tag(&id), strip_tag(name)]
                .iter()
                .any(|v| !v.is_empty() && wanted.iter().any(|w| w == v))
    };
    event
        && exact("type", &typ)
        && exact("scope", &scope)
        && [
            "container",
            "daemon",
            "plugin",
            "volume",
            "network",
            "node",
            "service",
            "secret",
            "config",
        ]
        .iter()
        .all(|k| object(k))
        && image
        && f.labels_match(|k| attrs.get(k).map(String::as_str))
}

/// `name:tag` without its tag (a port of a registry host is not a tag).
fn strip_tag(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !name.starts_with("sha256:") => repo,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        typ: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attrs: &[(&str, &str)],
    ) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some(id.into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            scope: Some(berth_api::models::EventMessageScopeEnum::LOCAL),
            time: None,
            time_nano: None,
        }
    }

    fn filters(json: &str) -> Filters {
        Filters::parse(json).expect("filters")
    }

    #[test]
    fn dockerds_filters() {
        use EventMessageTypeEnum::*;
        let start = event(
            CONTAINER,
            "start",
            "abc123",
            &[("name", "web"), ("image", "nginx:1"), ("team", "a")],
        );
        let health = event(
            CONTAINER,
            "health_status: healthy",
            "abc123",
            &[("name", "web")],
        );
        let vol = event(VOLUME, "create", "data", &[("driver", "local")]);
        let net = event(
            NETWORK,
            "connect",
            "n1",
            &[("name", "front"), ("container", "abc123")],
        );
        let tag = event(
            IMAGE,
            "tag",
            "sha256:ff",
            &[("name", "localhost:5000/app:2")],
        );
        let cases: &[(&str, &EventMessage, bool)] = &[
            (r#"{"container":["abc"]}"#, &start, true),
            (r#"{"container":["we"]}"#, &start, true),
            (r#"{"container":["x"]}"#, &start, false),
            (r#"{"event":["start","stop"]}"#, &start, true),
            (r#"{"event":["health_status"]}"#, &health, true),
            (r#"{"event":["health"]}"#, &health, false),
            (r#"{"type":["volume"],"volume":["data"]}"#, &vol, true),
            (r#"{"volume":["other"]}"#, &vol, false),
            (r#"{"network":["front"]}"#, &net, true),
            (r#"{"network":["back"]}"#, &net, false),
            (r#"{"image":["nginx"]}"#, &start, true),
            (r#"{"image":["nginx:1"]}"#, &start, true),
            (r#"{"image":["nginx:2"]}"#, &start, false),
            (r#"{"image":["localhost:5000/app"]}"#, &tag, true),
            (r#"{"label":["team=a"]}"#, &start, true),
            (r#"{"label":["team=b"]}"#, &start, false),
            (r#"{"scope":["local"]}"#, &start, true),
            (r#"{"scope":["swarm"]}"#, &start, false),
            (r#"{"daemon":["x"]}"#, &start, false),
        ];
        for (json, e, want) in cases {
            assert_eq!(
                matches(e, &filters(json)),
                *want,
                "{json} on {:?}",
                e.action
            );
        }
    }
}
