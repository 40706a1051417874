//! Finding, reading and building the [`Config`]: YAML → `${VAR}` expansion → `WXBRIDGE__…`
//! overrides → derived defaults → typed deserialization → validation.
//!
//! The tree stays a `yaml_serde::Value` until the last step so that every problem can be
//! reported with its key path, and values from the environment keep their exact text (see
//! `lenient.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};

use super::accounts;
use super::error::ConfigError;
use super::expand::expand;
use super::lenient::Lenient;
use super::overrides::apply_overrides;
use super::tree::scalar_text;
use super::{
    default_client_id, default_qr_png, validate, Config, DEFAULT_ACCOUNT, DEFAULT_STATE_DIR,
};

/// The variable that names the config file when `--config` is not given.
const CONFIG_VAR: &str = "WXBRIDGE_CONFIG";
/// The file looked for in the working directory.
const DEFAULT_FILE: &str = "bridge.yaml";
/// How errors name the configuration when no file was read.
const NO_FILE: &str = "built-in defaults";

/// A validated configuration and the file it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration, defaults filled in and validated.
    pub config: Config,
    /// The file that was read; `None` when no file was found and only defaults (and
    /// `WXBRIDGE__…` overrides) apply.
    pub source: Option<PathBuf>,
}

/// Loads the configuration the way `wxbridge` does at start.
///
/// The file is `explicit` (from `--config`), else `env["WXBRIDGE_CONFIG"]`, else
/// `./bridge.yaml` if it exists, else none (built-in defaults). A file named by `--config` or
/// `WXBRIDGE_CONFIG` that does not exist is an error. `env` is the process environment
/// (`std::env::vars().collect()`); it feeds `${VAR}` and `WXBRIDGE__SECTION__KEY` overrides.
pub fn load(explicit: Option<&Path>, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
    load_in(Path::new(""), explicit, env)
}

/// [`load`], looking for `bridge.yaml` in `dir` instead of the working directory.
pub(super) fn load_in(
    dir: &Path,
    explicit: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<Loaded, ConfigError> {
    let named = match (explicit, env.get(CONFIG_VAR).filter(|v| !v.is_empty())) {
        (Some(path), _) => Some((path.to_path_buf(), "--config")),
        (None, Some(path)) => Some((PathBuf::from(path), CONFIG_VAR)),
        (None, None) => None,
    };
    let path = match named {
        Some((path, named_by)) if !path.exists() => {
            return Err(ConfigError::NotFound { path, named_by })
        }
        Some((path, _)) => Some(path),
        None => Some(dir.join(DEFAULT_FILE)).filter(|path| path.is_file()),
    };
    let Some(path) = path else {
        let config = build(None, NO_FILE, env)?;
        return Ok(Loaded {
            config,
            source: None,
        });
    };
    let text = std::fs::read_to_string(&path).map_err(|cause| ConfigError::Read {
        path: path.clone(),
        cause,
    })?;
    let config = build(Some(&text), &path.display().to_string(), env)?;
    Ok(Loaded {
        config,
        source: Some(path),
    })
}

/// Builds a configuration from YAML text, with `${VAR}` and overrides taken from `env`.
///
/// `origin` names the text in errors (a file name, say). For tests and tools; the daemon uses
/// [`load`].
pub fn parse(
    yaml: &str,
    origin: &str,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    build(Some(yaml), origin, env)
}

fn build(
    yaml: Option<&str>,
    origin: &str,
    env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        message,
    };
    let mut tree = match yaml {
        Some(text) => {
            let mut tree: Value =
                yaml_serde::from_str(text).map_err(|err| ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: err.to_string(),
                })?;
            tree.apply_merge()
                .map_err(|err| invalid(TOP_LEVEL, err.to_string()))?;
            refuse_empty_token_var(&tree, env, origin)?;
            expand(&mut tree, "", env, origin)?;
            tree
        }
        None => Value::Null,
    };
    if tree.is_null() {
        tree = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(root) = &mut tree else {
        return Err(invalid(
            TOP_LEVEL,
            "expected a mapping of keys such as `account:`".to_owned(),
        ));
    };
    refuse_empty_token_override(env)?;
    let sources = apply_overrides(root, env)?;
    let origin_of = |key: &str| {
        sources
            .iter()
            .filter(|(path, _)| is_within(key, path))
            .max_by_key(|(path, _)| path.len())
            .map_or(origin, |(_, var)| var.as_str())
            .to_owned()
    };
    let written = accounts::merge(root).map_err(|(key, message)| ConfigError::Invalid {
        origin: origin_of(&key),
        key,
        message,
    })?;
    fill_derived_defaults(root, written.first_name());

    let config: Config = serde_path_to_error::deserialize(Lenient(tree)).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        // A problem in a value an account took from the shared section names that section.
        let shared = |key: &str| written.attribute(key).map(|(shared, _)| shared);
        describe(&path, &err.into_inner().to_string(), origin_of, shared)
    })?;
    validate::validate(&config).map_err(|problem| {
        let (key, message) = match written.attribute(&problem.key) {
            Some((shared, account)) => (
                shared,
                format!(
                    "{} (the shared value, as account {account} uses it)",
                    problem.message
                ),
            ),
            None => (problem.key, problem.message),
        };
        ConfigError::Invalid {
            origin: origin_of(&key),
            key,
            message,
        }
    })?;
    Ok(config)
}

/// `http.token: ${VAR}` with `VAR` set to the empty string. An empty expansion otherwise
/// means "not set", which for the token would quietly turn authentication off; `${VAR:-}`
/// stays the way to make the token optional on purpose.
fn refuse_empty_token_var(
    tree: &Value,
    env: &HashMap<String, String>,
    origin: &str,
) -> Result<(), ConfigError> {
    let Some(text) = tree
        .get("http")
        .and_then(|http| http.get("token"))
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let var = text
        .trim()
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .filter(|var| var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    match var {
        Some(var) if env.get(var).is_some_and(|value| value.is_empty()) => {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                key: "http.token".to_owned(),
                message: format!(
                    "environment variable {var} is empty, which would turn authentication off; \
                     set it, or write ${{{var}:-}} to make the token optional"
                ),
            })
        }
        _ => Ok(()),
    }
}

/// `WXBRIDGE__HTTP__TOKEN=` (empty): for any other key an empty override unsets it, but an
/// unset token turns authentication off, so that takes an explicit `null`.
fn refuse_empty_token_override(env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let empty = env.iter().find(|(var, value)| {
        var.strip_prefix("WXBRIDGE__")
            .is_some_and(|rest| rest.eq_ignore_ascii_case("http__token"))
            && value.trim().is_empty()
    });
    match empty {
        Some((var, _)) => Err(ConfigError::Override {
            var: var.clone(),
            message: "is empty, which would turn authentication off; \
                      set it to null to run without a token"
                .to_owned(),
        }),
        None => Ok(()),
    }
}

/// How an error about the whole document names its key.
const TOP_LEVEL: &str = "(top level)";

/// Turns a deserialization error at `path` into a [`ConfigError`] that names the full key.
///
/// `shared` renames a key inside an account's entry that the account took from the shared
/// sections (see [`accounts::Written::attribute`]).
fn describe(
    path: &str,
    message: &str,
    origin_of: impl Fn(&str) -> String,
    shared: impl Fn(&str) -> Option<String>,
) -> ConfigError {
    // serde words these as "unknown field `x`, expected one of `a`, `b`" (or "there are no
    // fields") and "unknown variant `x`, expected …"; the backquoted names are what we need.
    let quoted = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let key = if path.is_empty() {
            field.to_owned()
        } else if path.rsplit('.').next() == Some(field) {
            path.to_owned()
        } else {
            format!("{path}.{field}")
        };
        let key = shared(&key).unwrap_or(key);
        return ConfigError::UnknownKey {
            origin: origin_of(&key),
            known: quoted(expected),
            key,
        };
    }
    let renamed = shared(path);
    let key = match &renamed {
        Some(key) => key.as_str(),
        None if path.is_empty() => TOP_LEVEL,
        None => path,
    };
    let message = match message.strip_prefix("unknown variant `") {
        Some(rest) => {
            let (value, expected) = rest.split_once('`').unwrap_or((rest, ""));
            format!(
                "unknown value \"{value}\" (expected one of: {})",
                quoted(expected).join(", ")
            )
        }
        // humantime-serde drops the parser's reason, so say what a duration looks like.
        None if message.ends_with("expected a duration") => {
            format!("{message} such as 5s, 30m or 1h 30m")
        }
        None => message.to_owned(),
    };
    ConfigError::Invalid {
        origin: origin_of(key),
        key: key.to_owned(),
        message,
    }
}

/// Whether `key` is `path` or lies under it (`mqtt.url` under `mqtt`, `webhooks[0]` under
/// `webhooks`).
fn is_within(key: &str, path: &str) -> bool {
    key.strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// Fills the defaults that depend on other keys: `wechat.qr_png` and `media.dir` from
/// `state_dir`, and `mqtt.client_id` from `account` (with `accounts`, the first one's, so a
/// move from `account: home` to `accounts: [{account: home}]` keeps the broker session).
/// An explicit null counts as not set. Each account's own defaults are filled by
/// [`accounts::merge`].
fn fill_derived_defaults(root: &mut Mapping, first_account: Option<String>) {
    let text_of = |root: &Mapping, key: &str, default: &str| {
        root.get(key)
            .and_then(scalar_text)
            .unwrap_or_else(|| default.to_owned())
    };
    let state_dir = text_of(root, "state_dir", DEFAULT_STATE_DIR);
    let account = first_account.unwrap_or_else(|| text_of(root, "account", DEFAULT_ACCOUNT));

    let wechat = root.entry(Value::from("wechat")).or_insert(Value::Null);
    if wechat.is_null() {
        *wechat = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(wechat) = wechat {
        if wechat.get("qr_png").is_none_or(Value::is_null) {
            let path = default_qr_png(Path::new(&state_dir));
            wechat.insert(
                Value::from("qr_png"),
                Value::from(path.to_string_lossy().as_ref()),
            );
        }
    }
    let media = root.entry(Value::from("media")).or_insert(Value::Null);
    if media.is_null() {
        *media = Value::Mapping(Mapping::new());
    }
    if let Value::Mapping(media) = media {
        if media.get("dir").is_none_or(Value::is_null) {
            let path = super::media::default_media_dir(Path::new(&state_dir));
            media.insert(
                Value::from("dir"),
                Value::from(path.to_string_lossy().as_ref()),
            );
        }
    }
    if let Some(Value::Mapping(mqtt)) = root.get_mut("mqtt") {
        if mqtt.get("client_id").is_none_or(Value::is_null) {
            mqtt.insert(
                Value::from("client_id"),
                Value::from(default_client_id(&account)),
            );
        }
    }
}
