//! `--cache-from`: an image whose history continues the current one with the step about to
//! run gives that step's result (its layer, or only the config for a step without one), as the
//! classic builder's cache-from does. History entries are compared by their text and whether
//! they made a layer, layers by their diff_ids.

use serde_json::Value;

use super::Image;

/// One history entry: what made it, and whether it made no layer.
fn history(image: &Value) -> Vec<(String, bool)> {
    image["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|e| {
                    (
                        e["created_by"].as_str().unwrap_or("").to_string(),
                        e["empty_layer"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn diff_ids(image: &Value) -> Vec<String> {
    image["rootfs"]["diff_ids"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The candidate whose history continues `current`'s with the last entry of `next` (the
/// step's config), and the index of the layer that step made there (`None`: no layer).
pub(super) fn find<'a>(
    candidates: &'a [Image],
    current: &Value,
    next: &Value,
) -> Option<(&'a Image, Option<usize>)> {
    let current_history = history(current);
    let (step, _) = history(next).pop()?;
    let current_layers = diff_ids(current);
    candidates.iter().find_map(|c| {
        let h = history(&c.config);
        let d = diff_ids(&c.config);
        let continues = h.len() > current_history.len()
            && h.get(..current_history.len()) == Some(current_history.as_slice())
            && d.get(..current_layers.len()) == Some(current_layers.as_slice());
        let (created_by, empty) = h.get(current_history.len())?;
        if !continues || *created_by != step {
            return None;
        }
        if *empty {
            Some((c, None))
        } else {
            let index = current_layers.len();
            (index < d.len()).then_some((c, Some(index)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(history: &[(&str, bool)], layers: &[&str]) -> Value {
        let h: Vec<Value> = history
            .iter()
            .map(|(c, e)| json!({"created_by": c, "empty_layer": e}))
            .collect();
        json!({"history": h, "rootfs": {"diff_ids": layers}})
    }

    #[test]
    fn a_candidate_continuing_the_history_gives_the_step() {
        let base = image(&[("import", false)], &["sha256:a"]);
        let built = Image {
            id: "sha256:c".into(),
            handle: String::new(),
            config: image(
                &[("import", false), ("ENV A=1", true), ("RUN x", false)],
                &["sha256:a", "sha256:b"],
            ),
        };
        let candidates = [built];
        let next = image(&[("import", false), ("ENV A=1", true)], &["sha256:a"]);
        let (c, layer) = find(&candidates, &base, &next).unwrap();
        assert_eq!((c.id.as_str(), layer), ("sha256:c", None));
        let next = image(
            &[("import", false), ("ENV A=1", true), ("RUN x", false)],
            &["sha256:a"],
        );
        let (_, layer) = find(&candidates, &next_minus_last(&next), &next).unwrap();
        assert_eq!(layer, Some(1));
        // Another step, or another past, gives nothing.
        let other = image(&[("import", false), ("ENV A=2", true)], &["sha256:a"]);
        assert!(find(&candidates, &base, &other).is_none());
        let elsewhere = image(&[("import", false)], &["sha256:z"]);
        let next = image(&[("import", false), ("ENV A=1", true)], &["sha256:z"]);
        assert!(find(&candidates, &elsewhere, &next).is_none());
    }

    /// `next` without its last history entry (the current image of its step).
    fn next_minus_last(next: &Value) -> Value {
        let mut v = next.clone();
        if let Some(h) = v["history"].as_array_mut() {
            h.pop();
        }
        v
    }
}
