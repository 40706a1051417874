//! `WXBRIDGE__SECTION__KEY=value` overrides from the environment, applied to the YAML tree
//! before it is typed. Keys are lowercased; a numeric part indexes a list
//! (`WXBRIDGE__WEBHOOKS__0__URL`); missing sections and list items are created.

use std::cmp::Ordering;
use std::collections::HashMap;

use yaml_serde::{Mapping, Value};

use super::error::ConfigError;
use super::tree::join_key;

/// Variables with this prefix override keys: `WXBRIDGE__MQTT__URL` sets `mqtt.url`.
const OVERRIDE_PREFIX: &str = "WXBRIDGE__";

/// One `WXBRIDGE__A__B=v` variable.
struct Override<'a> {
    var: &'a str,
    segments: Vec<String>,
    value: &'a str,
}

/// Applies every `WXBRIDGE__…` variable to `root`, in key order so that list items are
/// created in index order. Returns which key paths each variable set or created.
pub(super) fn apply_overrides(
    root: &mut Mapping,
    env: &HashMap<String, String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut overrides: Vec<Override<'_>> = env
        .iter()
        .filter_map(|(var, value)| {
            let rest = var.strip_prefix(OVERRIDE_PREFIX)?;
            let segments = rest.split("__").map(str::to_ascii_lowercase).collect();
            Some(Override {
                var,
                segments,
                value,
            })
        })
        .collect();
    overrides.sort_by(|a, b| compare_segments(&a.segments, &b.segments).then(a.var.cmp(b.var)));

    let mut sources = Vec::new();
    for item in &overrides {
        let fail = |message: String| ConfigError::Override {
            var: item.var.to_owned(),
            message,
        };
        if item.segments.iter().any(String::is_empty) {
            return Err(fail(format!(
                "an empty key; overrides are written {OVERRIDE_PREFIX}SECTION__KEY"
            )));
        }
        let mut path = item.segments[0].clone();
        let mut node = root
            .entry(Value::from(path.as_str()))
            .or_insert(Value::Null);
        for segment in &item.segments[1..] {
            let index = segment.parse::<usize>().ok();
            if node.is_null() {
                *node = match index {
                    Some(_) => Value::Sequence(Vec::new()),
                    None => Value::Mapping(Mapping::new()),
                };
                sources.push((path.clone(), item.var.to_owned()));
            }
            node = match node {
                Value::Mapping(entries) => {
                    path = join_key(&path, segment);
                    entries
                        .entry(Value::from(segment.as_str()))
                        .or_insert(Value::Null)
                }
                Value::Sequence(items) => {
                    let Some(index) = index else {
                        return Err(fail(format!(
                            "{path} is a list; the part after it must be an index such as 0"
                        )));
                    };
                    if index > items.len() {
                        return Err(fail(format!(
                            "{path} has {} item(s), so the next index is {}",
                            items.len(),
                            items.len()
                        )));
                    }
                    path = format!("{path}[{index}]");
                    if index == items.len() {
                        items.push(Value::Null);
                        sources.push((path.clone(), item.var.to_owned()));
                    }
                    &mut items[index]
                }
                _ => {
                    return Err(fail(format!(
                        "{path} is a single value, not a section or list"
                    )))
                }
            };
        }
        *node = scalar_from_env(item.value);
        sources.push((path, item.var.to_owned()));
    }
    Ok(sources)
}

/// Orders key paths with numeric parts compared as numbers (`webhooks.2` before `webhooks.10`).
fn compare_segments(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<usize>(), y.parse::<usize>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// An environment value as a YAML scalar: empty, `~` and `null` unset the key; anything else
/// is kept as text and converted when the key wants a number or bool.
fn scalar_from_env(value: &str) -> Value {
    match value.trim() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        _ => Value::String(value.to_owned()),
    }
}
