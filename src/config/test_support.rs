//! What the loader's tests share: an environment from pairs, and parsing that must pass or fail.

use std::collections::HashMap;

use super::{parse, Config};

/// The environment `${VAR}` and the overrides read, from `(name, value)` pairs.
pub(super) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// `yaml` loaded as `bridge.yaml` with `vars` as the environment; panics naming the error.
pub(super) fn parse_ok(yaml: &str, vars: &[(&str, &str)]) -> Config {
    match parse(yaml, "bridge.yaml", &env(vars)) {
        Ok(config) => config,
        Err(err) => panic!("{yaml:?} should load: {err}"),
    }
}

/// The error `yaml` gives as `bridge.yaml`; panics if it loads.
pub(super) fn parse_err(yaml: &str, vars: &[(&str, &str)]) -> String {
    match parse(yaml, "bridge.yaml", &env(vars)) {
        Ok(config) => panic!("{yaml:?} should fail, got {config:?}"),
        Err(err) => err.to_string(),
    }
}
