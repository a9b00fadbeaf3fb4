//! A network configuration list: `{"cniVersion", "name", "plugins": [{"type", ...}, ...]}`.
//! A single plugin's configuration (`.conf`: `type` at the top level, no `plugins`) is taken
//! as a list of one. Each plugin's configuration is kept as written, so that fields only the
//! plugin knows reach it unchanged.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use super::CniError;
use crate::ports::PublishedPort;

/// The capability of port-mapping plugins (`portmap`).
pub const CAP_PORT_MAPPINGS: &str = "portMappings";

/// The configuration versions accepted (results of 0.3.x and 0.4.0 have the shape of 1.0.0's
/// as far as Berth reads them).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
/// The most a conflist file may hold.
pub const MAX_SIZE: u64 = 1 << 20;

/// A parsed and checked configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    /// `cniVersion`.
    pub cni_version: String,
    /// `name`.
    pub name: String,
    /// `plugins`, each an object with a `type`.
    pub plugins: Vec<Map<String, Value>>,
}

/// The `type` of a plugin configuration ([`ConfList::parse`] checked there is one).
pub fn plugin_type(plugin: &Map<String, Value>) -> &str {
    plugin.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Whether a plugin configuration declares capability `cap` (`"capabilities": {cap: true}`).
pub fn has_capability(plugin: &Map<String, Value>, cap: &str) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get(cap))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The `runtimeConfig` entry of the `portMappings` capability for `ports`: `[{"hostPort",
/// "containerPort", "protocol", "hostIP"}]` (no `hostIP` for all addresses).
pub fn port_mappings(ports: &[PublishedPort]) -> Value {
    ports
        .iter()
        .map(|p| {
            let mut m = serde_json::json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": p.proto.as_str(),
            });
            if !p.host_ip.is_unspecified() {
                m["hostIP"] = Value::String(p.host_ip.to_string());
            }
            m
        })
        .collect()
}

impl ConfList {
    /// Parses and checks `text`.
    pub fn parse(text: &str) -> Result<ConfList, CniError> {
        let bad = |m: String| CniError::Invalid(m);
        let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let Value::Object(top) = value else {
            return Err(bad("not a JSON object".into()));
        };
        let version = top
            .get("cniVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no \"cniVersion\"".into()))?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(bad(format!(
                "cniVersion {version:?} is not supported (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        let name = top
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no \"name\"".into()))?;
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric());
        if !name_ok {
            return Err(bad(format!(
                "invalid network name {name:?} (letters, digits, '_', '.', '-')"
            )));
        }
        let plugins: Vec<Map<String, Value>> = match top.get("plugins") {
            Some(Value::Array(list)) => list
                .iter()
                .map(|p| match p {
                    Value::Object(o) => Ok(o.clone()),
                    _ => Err(bad("a plugin configuration is not an object".into())),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("\"plugins\" is not a list".into())),
            None if top.contains_key("type") => {
                let mut single = top.clone();
                single.remove("cniVersion");
                single.remove("name");
                vec![single]
            }
            None => return Err(bad("no \"plugins\"".into())),
        };
        if plugins.is_empty() {
            return Err(bad("\"plugins\" is empty".into()));
        }
        for plugin in &plugins {
            let kind = plugin.get("type").and_then(Value::as_str).unwrap_or("");
            let kind_ok =
                !kind.is_empty() && kind != "." && kind != ".." && !kind.contains(['/', '\0']);
            if !kind_ok {
                return Err(bad(format!("invalid plugin type {kind:?}")));
            }
        }
        Ok(ConfList {
            cni_version: version.to_string(),
            name: name.to_string(),
            plugins,
        })
    }

    /// What plugin `index` reads on stdin: its configuration with `name`, `cniVersion`,
    /// (when there is one) `prevResult`, and the entries of `runtime` for the capabilities it
    /// declares (`"capabilities": {"portMappings": true}`) as its `runtimeConfig`, as the
    /// spec's "dynamic plugin-specific fields" have it: a plugin declaring none gets none.
    pub fn plugin_config(
        &self,
        index: usize,
        prev: Option<&Value>,
        runtime: &Map<String, Value>,
    ) -> Value {
        let mut config = self.plugins.get(index).cloned().unwrap_or_default();
        config.insert("name".into(), Value::String(self.name.clone()));
        config.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        match prev {
            Some(prev) => config.insert("prevResult".into(), prev.clone()),
            None => config.remove("prevResult"),
        };
        let given: Map<String, Value> = runtime
            .iter()
            .filter(|(cap, _)| has_capability(&config, cap))
            .map(|(cap, value)| (cap.clone(), value.clone()))
            .collect();
        if !given.is_empty() {
            let mut merged = match config.remove("runtimeConfig") {
                Some(Value::Object(written)) => written,
                _ => Map::new(),
            };
            merged.extend(given);
            config.insert("runtimeConfig".into(), Value::Object(merged));
        }
        Value::Object(config)
    }

    /// Whether a plugin of the list declares capability `cap`.
    pub fn has_capability(&self, cap: &str) -> bool {
        self.plugins.iter().any(|p| has_capability(p, cap))
    }

    /// The first IPv4 subnet of a plugin's `ipam` (host-local's `subnet`, or the first of its
    /// `ranges`), with its gateway when given.
    pub fn ipam_subnet(&self) -> Option<(Ipv4Net, Option<Ipv4Addr>)> {
        let from = |o: &Map<String, Value>| -> Option<(Ipv4Net, Option<Ipv4Addr>)> {
            let subnet: Ipv4Net = o.get("subnet")?.as_str()?.parse().ok()?;
            let gateway = o
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok());
            Some((subnet.trunc(), gateway))
        };
        self.plugins
            .iter()
            .filter_map(|p| p.get("ipam").and_then(Value::as_object))
            .find_map(|ipam| {
                from(ipam).or_else(|| {
                    ipam.get("ranges")?
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_array)
                        .flatten()
                        .filter_map(Value::as_object)
                        .find_map(from)
                })
            })
    }

    /// The `ipam` type of the first plugin that has one (`host-local`), for inspect.
    pub fn ipam_type(&self) -> Option<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("ipam").and_then(Value::as_object))
            .find_map(|ipam| ipam.get("type").and_then(Value::as_str))
    }

    /// The bridge interfaces the list's `bridge` plugins make (their `bridge` field, `cni0`
    /// when absent).
    pub fn bridges(&self) -> Vec<String> {
        self.plugins
            .iter()
            .filter(|p| plugin_type(p) == "bridge")
            .map(|p| {
                p.get("bridge")
                    .and_then(Value::as_str)
                    .unwrap_or("cni0")
                    .to_string()
            })
            .collect()
    }

    /// The `mtu` of the first plugin that sets one.
    pub fn mtu(&self) -> Option<u32> {
        self.plugins
            .iter()
            .find_map(|p| p.get("mtu").and_then(Value::as_u64))
            .and_then(|m| u32::try_from(m).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"n1","plugins":[
        {"type":"bridge","bridge":"cni9","isGateway":true,
         "ipam":{"type":"host-local","ranges":[[{"subnet":"10.9.0.0/24","gateway":"10.9.0.1"}]]}},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn a_list_parses_and_plugins_get_name_version_and_prev_result() {
        let conf = ConfList::parse(LIST).unwrap();
        assert_eq!(conf.plugins.len(), 2);
        assert_eq!(
            conf.ipam_subnet(),
            Some((
                "10.9.0.0/24".parse().unwrap(),
                Some(Ipv4Addr::new(10, 9, 0, 1))
            ))
        );
        assert_eq!(conf.bridges(), ["cni9"]);
        assert_eq!(conf.ipam_type(), Some("host-local"));
        let prev = serde_json::json!({"cniVersion": "1.0.0", "ips": []});
        let none = Map::new();
        let c = conf.plugin_config(1, Some(&prev), &none);
        assert_eq!(c["name"], "n1");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["prevResult"], prev);
        assert_eq!(c["capabilities"]["portMappings"], true);
        assert!(c.get("runtimeConfig").is_none());
        assert!(conf
            .plugin_config(0, None, &none)
            .get("prevResult")
            .is_none());
    }

    #[test]
    fn runtime_config_goes_only_to_plugins_declaring_the_capability() {
        let conf = ConfList::parse(LIST).unwrap();
        assert!(conf.has_capability(CAP_PORT_MAPPINGS));
        assert!(!conf.has_capability("bandwidth"));
        let ports = [
            PublishedPort {
                proto: crate::ports::Proto::Tcp,
                host_ip: Ipv4Addr::UNSPECIFIED.into(),
                host_port: 8080,
                container_ip: Ipv4Addr::new(10, 9, 0, 2).into(),
                container_port: 80,
            },
            PublishedPort {
                proto: crate::ports::Proto::Udp,
                host_ip: Ipv4Addr::LOCALHOST.into(),
                host_port: 5353,
                container_ip: Ipv4Addr::new(10, 9, 0, 2).into(),
                container_port: 53,
            },
        ];
        let mut runtime = Map::new();
        runtime.insert(CAP_PORT_MAPPINGS.into(), port_mappings(&ports));
        runtime.insert("bandwidth".into(), serde_json::json!({"ingressRate": 1}));
        assert!(conf
            .plugin_config(0, None, &runtime)
            .get("runtimeConfig")
            .is_none());
        let c = conf.plugin_config(1, None, &runtime);
        assert_eq!(
            c["runtimeConfig"],
            serde_json::json!({"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
            ]})
        );
    }

    #[test]
    fn a_single_plugin_conf_is_a_list_of_one() {
        let conf = ConfList::parse(
            r#"{"cniVersion":"0.4.0","name":"one","type":"bridge","ipam":{"type":"host-local","subnet":"10.8.0.0/16"}}"#,
        )
        .unwrap();
        assert_eq!(conf.plugins.len(), 1);
        assert!(conf.plugins[0].get("name").is_none());
        assert_eq!(
            conf.ipam_subnet().unwrap().0,
            "10.8.0.0/16".parse().unwrap()
        );
        assert_eq!(conf.bridges(), ["cni0"]);
    }

    #[test]
    fn bad_lists_are_refused_with_a_reason() {
        for (text, words) in [
            ("nope", "expected"),
            ("[]", "not a JSON object"),
            (r#"{"name":"a","plugins":[]}"#, "cniVersion"),
            (
                r#"{"cniVersion":"0.2.0","name":"a","plugins":[]}"#,
                "not supported",
            ),
            (r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#, "name"),
            (
                r#"{"cniVersion":"1.0.0","name":"a b","plugins":[{"type":"x"}]}"#,
                "invalid network name",
            ),
            (r#"{"cniVersion":"1.0.0","name":"a","plugins":[]}"#, "empty"),
            (
                r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"../x"}]}"#,
                "plugin type",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"a","plugins":[{}]}"#,
                "plugin type",
            ),
            (r#"{"cniVersion":"1.0.0","name":"a"}"#, "no \"plugins\""),
        ] {
            let e = ConfList::parse(text).unwrap_err().to_string();
            assert!(e.contains(words), "{text}: {e}");
            assert!(e.starts_with("invalid cni conflist: "), "{e}");
        }
    }
}
