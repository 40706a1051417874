//! Two helpers on the YAML tree that loading, `${VAR}` expansion and the `WXBRIDGE__…`
//! overrides all use: the dotted key path error messages name, and the text of a scalar.
//! A leaf, so that none of those three imports another for them.

use yaml_serde::Value;

/// The path of `key` inside `parent` (`mqtt` + `url` → `mqtt.url`).
pub(super) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The text of a scalar, if `value` is one.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}
