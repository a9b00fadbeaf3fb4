//! Requests parsed into a typed [`Route`] (as firecracker's API server does): the version
//! prefix checked and stripped, the object name (an image name may hold `/` and `:`) matched by
//! suffix, and the query decoded.

use std::collections::HashMap;

use http::Method;

/// Every endpoint berthd serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Ping,
    Version,
    Info,
    Events,
    SystemDf,
    ContainerCreate,
    ContainerList,
    ContainerPrune,
    ContainerInspect(String),
    ContainerStart(String),
    ContainerStop(String),
    ContainerRestart(String),
    ContainerKill(String),
    ContainerPause(String),
    ContainerUnpause(String),
    ContainerWait(String),
    ContainerDelete(String),
    ContainerLogs(String),
    ContainerAttach(String),
    /// `GET /containers/{id}/attach/ws`.
    ContainerAttachWs(String),
    ContainerResize(String),
    ContainerRename(String),
    ContainerUpdate(String),
    ContainerTop(String),
    ContainerStats(String),
    ContainerExport(String),
    ContainerChanges(String),
    ContainerArchive(String),
    ExecCreate(String),
    ExecStart(String),
    ExecResize(String),
    ExecInspect(String),
    ImageList,
    ImageCreate,
    ImageLoad,
    /// `GET /images/get?names=...`, or `GET /images/{name}/get` (that one image).
    ImageGet(Option<String>),
    ImagePrune,
    ImageInspect(String),
    ImageHistory(String),
    ImageTag(String),
    ImagePush(String),
    ImageDelete(String),
    /// `GET /images/search?term=`.
    ImageSearch,
    /// `GET /distribution/{name}/json`.
    DistributionInspect(String),
    Commit,
    Auth,
    NetworkList,
    NetworkCreate,
    NetworkPrune,
    NetworkInspect(String),
    NetworkDelete(String),
    NetworkConnect(String),
    NetworkDisconnect(String),
    VolumeList,
    VolumeCreate,
    VolumePrune,
    VolumeInspect(String),
    VolumeDelete(String),
    Build,
    BuildPrune,
    /// A route of swarm mode (swarm, nodes, services, tasks, secrets, configs), which Berth
    /// does not have: answered as a dockerd outside a swarm answers it.
    Swarm(SwarmCall),
    /// `GET /plugins`: none installed.
    PluginList,
    /// A route about one plugin (`/plugins/{name}/...`): none is installed.
    Plugin(String),
    /// `POST /plugins/pull|create`, `GET /plugins/privileges`: Berth installs no plugins.
    PluginInstall,
}

/// Which kind of swarm call, for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmCall {
    /// `POST /swarm/leave`.
    Leave,
    /// `POST /swarm/init|join|unlock`: would make this node part of a swarm.
    Join,
    /// Any other: reads or changes the cluster's state.
    Manager,
    /// `PUT /volumes/{name}`: only cluster volumes can be updated.
    VolumeUpdate,
}

/// The swarm mode route `method path` names, if it is one (the paths of API 1.43).
fn swarm_route(method: &str, segs: &[&str]) -> Option<SwarmCall> {
    use SwarmCall::*;
    let call = match (method, segs) {
        ("POST", ["swarm", "leave"]) => Leave,
        ("POST", ["swarm", "init" | "join" | "unlock"]) => Join,
        ("GET", ["swarm"] | ["swarm", "unlockkey"]) | ("POST", ["swarm", "update"]) => Manager,
        ("GET", ["nodes" | "services" | "tasks" | "secrets" | "configs"]) => Manager,
        ("POST", ["services" | "secrets" | "configs", "create"]) => Manager,
        ("GET" | "DELETE", ["nodes" | "services" | "secrets" | "configs", _]) => Manager,
        ("GET", ["tasks", _] | ["services" | "tasks", _, "logs"]) => Manager,
        ("POST", ["nodes" | "services" | "secrets" | "configs", _, "update"]) => Manager,
        ("PUT", ["volumes", _]) => VolumeUpdate,
        _ => return None,
    };
    Some(call)
}

/// Why a request has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// 404 `page not found`.
    NotFound,
    /// 400: the client's version is outside what we serve.
    Version(String),
}

/// `1.41` → (1, 41).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Parses `method path`; returns the route and the API version the client asked for (None:
/// unversioned).
pub fn parse(method: &Method, path: &str) -> Result<(Route, Option<String>), RouteError> {
    let mut rest = path;
    let mut version = None;
    if let Some(after) = path.strip_prefix("/v") {
        if let Some((v, tail)) = after.split_once('/') {
            if parse_version(v).is_some() {
                let max = parse_version(berth_api::API_VERSION).unwrap_or((1, 43));
                let min = parse_version(berth_api::MIN_API_VERSION).unwrap_or((1, 24));
                let asked = parse_version(v).unwrap_or(max);
                if asked > max {
                    return Err(RouteError::Version(format!(
                        "client version {v} is too new. Maximum supported API version is {}",
                        berth_api::API_VERSION
                    )));
                }
                if asked < min {
                    return Err(RouteError::Version(format!(
                        "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                        berth_api::MIN_API_VERSION
                    )));
                }
                version = Some(v.to_string());
                // `tail` is what follows `/vX.Y/`; the route keeps its leading `/`.
                rest = after.strip_prefix(v).unwrap_or(tail);
            }
        }
    }
    let route = route(method, rest).ok_or(RouteError::NotFound)?;
    Ok((route, version))
}

fn route(method: &Method, path: &str) -> Option<Route> {
    use Route::*;
    let m = method.as_str();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let owned = |s: &str| s.to_string();
    Some(match (m, segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => Ping,
        ("GET", ["version"]) => Version,
        ("GET", ["info"]) => Info,
        ("GET", ["events"]) => Events,
        ("GET", ["system", "df"]) => SystemDf,
        ("POST", ["containers", "create"]) => ContainerCreate,
        ("GET", ["containers", "json"]) => ContainerList,
        ("POST", ["containers", "prune"]) => ContainerPrune,
        ("GET", ["containers", id, "json"]) => ContainerInspect(owned(id)),
        ("POST", ["containers", id, "start"]) => ContainerStart(owned(id)),
        ("POST", ["containers", id, "stop"]) => ContainerStop(owned(id)),
        ("POST", ["containers", id, "restart"]) => ContainerRestart(owned(id)),
        ("POST", ["containers", id, "kill"]) => ContainerKill(owned(id)),
        ("POST", ["containers", id, "pause"]) => ContainerPause(owned(id)),
        ("POST", ["containers", id, "unpause"]) => ContainerUnpause(owned(id)),
        ("POST", ["containers", id, "wait"]) => ContainerWait(owned(id)),
        ("DELETE", ["containers", id]) => ContainerDelete(owned(id)),
        // A link's name (`docker rm --link /web/db`): `/containers//web/db`.
        ("DELETE", ["containers", name @ ..]) if name.len() > 1 => ContainerDelete(name.join("/")),
        ("GET", ["containers", id, "logs"]) => ContainerLogs(owned(id)),
        ("POST", ["containers", id, "attach"]) => ContainerAttach(owned(id)),
        ("GET", ["containers", id, "attach", "ws"]) => ContainerAttachWs(owned(id)),
        ("POST", ["containers", id, "resize"]) => ContainerResize(owned(id)),
        ("POST", ["containers", id, "rename"]) => ContainerRename(owned(id)),
        ("POST", ["containers", id, "update"]) => ContainerUpdate(owned(id)),
        ("GET", ["containers", id, "top"]) => ContainerTop(owned(id)),
        ("GET", ["containers", id, "stats"]) => ContainerStats(owned(id)),
        ("GET", ["containers", id, "export"]) => ContainerExport(owned(id)),
        ("GET", ["containers", id, "changes"]) => ContainerChanges(owned(id)),
        ("GET" | "HEAD" | "PUT", ["containers", id, "archive"]) => ContainerArchive(owned(id)),
        ("POST", ["containers", id, "exec"]) => ExecCreate(owned(id)),
        ("POST", ["exec", id, "start"]) => ExecStart(owned(id)),
        ("POST", ["exec", id, "resize"]) => ExecResize(owned(id)),
        ("GET", ["exec", id, "json"]) => ExecInspect(owned(id)),
        ("GET", ["images", "json"]) => ImageList,
        ("POST", ["images", "create"]) => ImageCreate,
        ("POST", ["images", "load"]) => ImageLoad,
        ("GET", ["images", "get"]) => ImageGet(None),
        ("POST", ["images", "prune"]) => ImagePrune,
        ("POST", ["commit"]) => Commit,
        ("POST", ["auth"]) => Auth,
        ("GET", ["networks"] | ["networks", ""]) => NetworkList,
        ("POST", ["networks", "create"]) => NetworkCreate,
        ("POST", ["networks", "prune"]) => NetworkPrune,
        ("GET", ["networks", id]) => NetworkInspect(owned(id)),
        ("DELETE", ["networks", id]) => NetworkDelete(owned(id)),
        ("POST", ["networks", id, "connect"]) => NetworkConnect(owned(id)),
        ("POST", ["networks", id, "disconnect"]) => NetworkDisconnect(owned(id)),
        ("GET", ["volumes"] | ["volumes", ""]) => VolumeList,
        ("POST", ["volumes", "create"]) => VolumeCreate,
        ("POST", ["volumes", "prune"]) => VolumePrune,
        ("GET", ["volumes", name]) => VolumeInspect(owned(name)),
        ("DELETE", ["volumes", name]) => VolumeDelete(owned(name)),
        ("POST", ["build"]) => Build,
        ("POST", ["build", "prune"]) => BuildPrune,
        ("GET", ["images", name @ .., "json"]) if !name.is_empty() => ImageInspect(name.join("/")),
        ("GET", ["images", name @ .., "history"]) if !name.is_empty() => {
            ImageHistory(name.join("/"))
        }
        ("POST", ["images", name @ .., "tag"]) if !name.is_empty() => ImageTag(name.join("/")),
        ("POST", ["images", name @ .., "push"]) if !name.is_empty() => ImagePush(name.join("/")),
        ("GET", ["images", "search"]) => ImageSearch,
        ("GET", ["distribution", name @ .., "json"]) if !name.is_empty() => {
            DistributionInspect(name.join("/"))
        }
        ("GET", ["images", name @ .., "get"]) if !name.is_empty() => ImageGet(Some(name.join("/"))),
        ("DELETE", ["images", name @ ..]) if !name.is_empty() => ImageDelete(name.join("/")),
        ("GET", ["plugins"]) => PluginList,
        ("POST", ["plugins", "pull" | "create"]) | ("GET", ["plugins", "privileges"]) => {
            PluginInstall
        }
        ("GET", ["plugins", name @ .., "json"])
        | ("POST", ["plugins", name @ .., "enable" | "disable" | "upgrade" | "push" | "set"])
            if !name.is_empty() =>
        {
            Plugin(name.join("/"))
        }
        ("DELETE", ["plugins", name @ ..]) if !name.is_empty() => Plugin(name.join("/")),
        (m, segs) => Swarm(swarm_route(m, segs)?),
    })
}

/// The query string decoded into a map (the last value of a repeated key wins, except where
/// the caller reads every value with [`query_all`]).
pub fn query(q: Option<&str>) -> HashMap<String, String> {
    query_all(q).into_iter().collect()
}

/// Every `key=value` of the query, decoded, in order.
///
/// Decoded as `application/x-www-form-urlencoded` (Go's `url.ParseQuery` for what clients
/// send): `+` is a space, `%XX` a byte; a `%` not followed by two hex digits stays as it is,
/// and bytes that do not make UTF-8 become U+FFFD. The query is the request's own text, any
/// byte of which may be hostile: nothing here slices it.
pub fn query_all(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_and_unversioned_paths_route_the_same() {
        let (r, v) = parse(&Method::POST, "/v1.41/containers/abc/start").unwrap();
        assert_eq!(r, Route::ContainerStart("abc".into()));
        assert_eq!(v.as_deref(), Some("1.41"));
        let (r, v) = parse(&Method::GET, "/version").unwrap();
        assert_eq!((r, v), (Route::Version, None));
        assert_eq!(
            parse(&Method::GET, "/v1.41/images/localhost:5000/bb/json")
                .unwrap()
                .0,
            Route::ImageInspect("localhost:5000/bb".into())
        );
        assert_eq!(
            parse(&Method::DELETE, "/v1.41/images/a/b:c").unwrap().0,
            Route::ImageDelete("a/b:c".into())
        );
        assert_eq!(parse(&Method::GET, "/nope"), Err(RouteError::NotFound));
        assert!(matches!(
            parse(&Method::GET, "/v1.99/version"),
            Err(RouteError::Version(m)) if m.contains("too new")
        ));
    }

    #[test]
    fn queries_decode() {
        let q = query(Some("filters=%7B%22a%22%3A1%7D&t=10&x=a+b"));
        assert_eq!(q["filters"], "{\"a\":1}");
        assert_eq!(q["t"], "10");
        assert_eq!(q["x"], "a b");
    }

    #[test]
    fn hostile_queries_decode_without_panicking() {
        // Issue 12: a '%' and one hex digit, then a two-byte character, once sliced the query
        // inside the character and killed berthd.
        let q = query(Some("all=%a\u{e9}"));
        assert_eq!(q["all"], "%a\u{e9}");
        let q = query(Some("a=%&b=%z%&c=%ff%fe&%e9=%C3%A9&d=%"));
        assert_eq!(q["a"], "%");
        assert_eq!(q["b"], "%z%");
        assert_eq!(q["c"], "\u{fffd}\u{fffd}");
        assert_eq!(q["\u{fffd}"], "\u{e9}");
        assert_eq!(q["d"], "%");
        assert_eq!(
            query_all(Some("&&=&k")),
            [("".into(), "".into()), ("k".into(), "".into())]
        );
        for path in [
            "/v\u{e9}/_ping",
            "/v1.\u{e9}/x",
            "/v1.41",
            "/v",
            "/\u{e9}",
            "//",
            "",
        ] {
            let _ = parse(&Method::GET, path);
        }
        assert_eq!(parse(&Method::GET, "/v1.41/_ping").unwrap().0, Route::Ping);
    }
}
