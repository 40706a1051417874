//! `accounts:` on the YAML tree (DESIGN.md "Several accounts"): each entry's `wechat`, `send`
//! and `media` merged key by key over the shared top-level sections, and the defaults that
//! depend on the account's own state dir, before the tree is typed.
//!
//! Merging here rather than on the typed config is what lets `wechat: {desktop_mode: false}`
//! change that one key: once typed, a key the account did not write is indistinguishable
//! from one it set to the default. The entries as written are kept so an error in a merged
//! value can name the key the user wrote: `accounts[1].send.rate.burst` when the account set
//! it, `send.rate.burst` when it came from the shared section.

use std::path::Path;

use yaml_serde::{Mapping, Value};

use super::tree::scalar_text;
use super::{default_qr_png, media::default_media_dir, DEFAULT_STATE_DIR};

/// The sections an account may set for itself; every other one is shared.
pub(super) const PER_ACCOUNT: [&str; 3] = ["wechat", "send", "media"];

/// The `accounts` entries as written (after `${VAR}` and overrides), before merging.
#[derive(Debug, Default)]
pub(super) struct Written(Vec<Value>);

/// A problem with the shape of `accounts` itself: the key and what is wrong.
pub(super) type Refusal = (String, String);

/// Checks the shape of `accounts`, then merges each entry's per-account sections over the
/// shared ones and fills its derived defaults (`wechat.qr_png`, `media.dir` under
/// `<state_dir>/<account>`). Must run before the top-level derived defaults are filled, or
/// those would be merged in as if the user had written them.
pub(super) fn merge(root: &mut Mapping) -> Result<Written, Refusal> {
    let given = |root: &Mapping, key: &str| root.get(key).is_some_and(|v| !v.is_null());
    if !given(root, "accounts") {
        return Ok(Written::default());
    }
    if given(root, "account") {
        return Err((
            "accounts".to_owned(),
            "set either `account` (one account) or `accounts` (several), not both; \
             with `accounts`, name each one in its entry's `account`"
                .to_owned(),
        ));
    }
    let state_dir = root
        .get("state_dir")
        .and_then(scalar_text)
        .unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned());
    let shared: Vec<Value> = PER_ACCOUNT
        .iter()
        .map(|key| root.get(*key).cloned().unwrap_or(Value::Null))
        .collect();
    let Some(Value::Sequence(entries)) = root.get_mut("accounts") else {
        return Err((
            "accounts".to_owned(),
            "expected a list of entries such as `- account: home`".to_owned(),
        ));
    };
    if entries.is_empty() {
        return Err((
            "accounts".to_owned(),
            "must list at least one account (or leave it out and use `account`)".to_owned(),
        ));
    }
    let written = Written(entries.clone());
    for entry in entries.iter_mut() {
        // Anything but a mapping is left for the typed step to report with its path.
        let Value::Mapping(entry) = entry else {
            continue;
        };
        let name = entry
            .get("account")
            .and_then(scalar_text)
            .unwrap_or_default();
        let own_dir = Path::new(&state_dir).join(&name);
        for (key, base) in PER_ACCOUNT.iter().zip(&shared) {
            let own = entry.remove(*key).unwrap_or(Value::Null);
            let mut merged = merged(base, own);
            fill_defaults(key, &mut merged, &own_dir);
            entry.insert(Value::from(*key), merged);
        }
    }
    Ok(written)
}

/// `own` over `base`: mappings key by key, recursively; anything else (a list, a value, a
/// null) from `own` replaces what `base` has. A section that is not a mapping is kept as is,
/// for the typed step to report.
fn merged(base: &Value, own: Value) -> Value {
    match (base, own) {
        (Value::Mapping(base), Value::Mapping(own)) => {
            let mut out = base.clone();
            for (key, value) in own {
                let combined = match out.get(&key) {
                    Some(below) => merged(below, value),
                    None => value,
                };
                out.insert(key, combined);
            }
            Value::Mapping(out)
        }
        (base, Value::Null) => base.clone(),
        (_, own) => own,
    }
}

/// The defaults of `section` that depend on the account's state dir; an explicit null
/// counts as not set.
fn fill_defaults(section: &str, value: &mut Value, own_dir: &Path) {
    let (key, path) = match section {
        "wechat" => ("qr_png", default_qr_png(own_dir)),
        "media" => ("dir", default_media_dir(own_dir)),
        _ => return,
    };
    if value.is_null() {
        *value = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(section) = value {
        if section.get(key).is_none_or(Value::is_null) {
            section.insert(
                Value::from(key),
                Value::from(path.to_string_lossy().as_ref()),
            );
        }
    }
}

impl Written {
    /// The name of the first account, for defaults that take one (the MQTT client id).
    pub(super) fn first_name(&self) -> Option<String> {
        self.0.first()?.get("account").and_then(scalar_text)
    }

    /// The key an error at `key` should name. A key inside an account's per-account section
    /// (`accounts[1].send.rate.burst`) that the account did not write itself came from the
    /// shared section: then that key (`send.rate.burst`) and the account's name (for the
    /// message) are returned.
    pub(super) fn attribute(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix("accounts[")?;
        let (index, rest) = rest.split_once("].")?;
        let entry = self.0.get(index.parse::<usize>().ok()?)?;
        let section = rest.split(['.', '[']).next()?;
        if !PER_ACCOUNT.contains(&section) || written_at(entry, rest) {
            return None;
        }
        let name = entry
            .get("account")
            .and_then(scalar_text)
            .unwrap_or_default();
        Some((rest.to_owned(), name))
    }
}

/// Whether `tree` holds the key path `path` (`send.rate.burst`, `send.allow[2]`), or a value
/// on the way to it that replaced the shared one whole (a list, a value).
fn written_at(tree: &Value, path: &str) -> bool {
    let mut node = tree;
    for part in path.split('.') {
        let (name, indexed) = match part.split_once('[') {
            Some((name, _)) => (name, true),
            None => (part, false),
        };
        node = match node.get(name) {
            Some(next) if !next.is_null() => next,
            _ => return false,
        };
        // Only mappings are merged: a list or a value the account wrote replaced the shared
        // one whole, so whatever lies inside it is the account's.
        if indexed || !node.is_mapping() {
            return true;
        }
    }
    true
}
