//! `${VAR}` expansion inside the string values of the YAML tree, before it is typed.
//!
//! Expansion happens on parsed values, not on the file's text, so a variable holding `#` or
//! `: ` cannot change the YAML structure, and a missing variable is reported with its key.

use std::collections::HashMap;

use yaml_serde::Value;

use super::error::ConfigError;
use super::tree::{join_key, scalar_text};

/// Expands `${VAR}` (and `${VAR:-fallback}`) in every string scalar under `value`, which sits
/// at `key`; `origin` names the file in errors.
///
/// A scalar that is exactly one reference and expands to nothing becomes null, so
/// `token: ${TOKEN:-}` leaves the token unset. `$${` is a literal `${`.
pub(super) fn expand(
    value: &mut Value,
    key: &str,
    env: &HashMap<String, String>,
    origin: &str,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) => match expand_text(text, env) {
            Ok(Some(expanded)) => *value = expanded,
            Ok(None) => {}
            Err(TextError::Missing(var)) => {
                return Err(ConfigError::MissingVar {
                    origin: origin.to_owned(),
                    key: key.to_owned(),
                    var,
                })
            }
            Err(TextError::Malformed(message)) => {
                return Err(ConfigError::Invalid {
                    origin: origin.to_owned(),
                    key: key.to_owned(),
                    message,
                })
            }
        },
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                expand(item, &format!("{key}[{index}]"), env, origin)?;
            }
        }
        Value::Mapping(entries) => {
            for (name, item) in entries.iter_mut() {
                let name = scalar_text(name).unwrap_or_default();
                expand(item, &join_key(key, &name), env, origin)?;
            }
        }
        Value::Tagged(tagged) => expand(&mut tagged.value, key, env, origin)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// A failure inside one string.
enum TextError {
    Missing(String),
    Malformed(String),
}

/// The expanded value of `text`, or `None` when it holds no reference.
fn expand_text(text: &str, env: &HashMap<String, String>) -> Result<Option<Value>, TextError> {
    if !text.contains('$') {
        return Ok(None);
    }
    let whole = text.starts_with("${") && text.find('}') == Some(text.len() - 1);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail.find('}').ok_or_else(|| {
                TextError::Malformed(format!("`${{` without a closing `}}` in {text:?}"))
            })?;
            let (name, fallback) = match tail[..end].split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (&tail[..end], None),
            };
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(TextError::Malformed(format!(
                    "\"${{{name}}}\" is not a variable name (letters, digits and `_`); \
                     write $${{ for a literal ${{"
                )));
            }
            match (env.get(name), fallback) {
                (Some(found), Some(fallback)) if found.is_empty() => out.push_str(fallback),
                (Some(found), _) => out.push_str(found),
                (None, Some(fallback)) => out.push_str(fallback),
                (None, None) => return Err(TextError::Missing(name.to_owned())),
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Some(if whole && out.is_empty() {
        Value::Null
    } else {
        Value::String(out)
    }))
}
