//! Docker's rules for query parameters.
//!
//! - Booleans (`httputils.BoolValue`): false iff the lower-cased value is one of `""`, `0`,
//!   `no`, `false`, `none`; anything else is true (docker-py sends `False`/`True`).
//! - `filters`: URL-decoded JSON, either the Go CLI's map of booleans
//!   (`{"status":{"running":true}}`) or docker-py's lists (`{"label":["a=b"]}`).

use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid filter: {0}")]
    Filters(String),
}

/// Docker's boolean query value.
pub fn bool_value(value: &str) -> bool {
    !matches!(
        value.to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

/// Parsed `filters`: each key with its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the JSON of a `filters` parameter (already URL-decoded); empty means none.
    pub fn parse(json: &str) -> Result<Filters, QueryError> {
        if json.trim().is_empty() {
            return Ok(Filters::default());
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| QueryError::Filters(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| QueryError::Filters("not a JSON object".into()))?;
        let mut out = BTreeMap::new();
        for (key, values) in object {
            let list: Vec<String> = match values {
                serde_json::Value::Object(map) => map
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                other => {
                    return Err(QueryError::Filters(format!(
                        "{key}: expected an object or a list, got {other}"
                    )))
                }
            };
            out.insert(key.clone(), list);
        }
        Ok(Filters(out))
    }

    /// The values of `key` (empty if absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether `key` is filtered on at all.
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Whether an object with these labels passes the `label` filters (each `KEY` or
    /// `KEY=VALUE` must hold, as dockerd's) and the `label!` ones (none may hold).
    pub fn labels_match<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        let holds = |filter: &String| match filter.split_once('=') {
            Some((k, v)) => label(k) == Some(v),
            None => label(filter).is_some(),
        };
        self.get("label").iter().all(holds) && !self.get("label!").iter().any(holds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_dockers_rule() {
        for f in ["", "0", "no", "False", "NONE", "false"] {
            assert!(!bool_value(f), "{f}");
        }
        for t in ["1", "true", "True", "yes", "anything"] {
            assert!(bool_value(t), "{t}");
        }
    }

    #[test]
    fn both_filter_encodings_parse() {
        let go =
            Filters::parse(r#"{"status":{"running":true,"exited":true},"x":{"y":false}}"#).unwrap();
        assert_eq!(go.get("status"), ["exited", "running"]);
        assert!(go.get("x").is_empty() && go.has("x"));
        let py = Filters::parse(r#"{"label":["com.docker.compose.project=p","a=b"]}"#).unwrap();
        assert_eq!(py.get("label"), ["com.docker.compose.project=p", "a=b"]);
        assert!(Filters::parse("").unwrap().0.is_empty());
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse("{").is_err());
    }
}
