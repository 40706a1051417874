//! The `http` section's rules: who may be served without a token, and what counts as a token.

use super::test_support::env;
use super::*;

fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
    parse(yaml, "bridge.yaml", &env(vars)).map_err(|e| e.to_string())
}

#[test]
fn a_public_listen_address_without_a_token_is_refused() {
    for yaml in [
        "http: {listen: '0.0.0.0:8787'}",
        "http: {listen: '[::]:8787'}",
        "http: {listen: '192.168.1.10:8787', token: null}",
    ] {
        let err = load(yaml, &[]).unwrap_err();
        assert!(
            err.starts_with("bridge.yaml: http.listen: ") && err.contains("http.token must be set"),
            "{yaml}: {err}"
        );
    }
    let err = load("http: {}", &[("WXBRIDGE__HTTP__LISTEN", "0.0.0.0:8787")]).unwrap_err();
    assert!(
        err.starts_with("WXBRIDGE__HTTP__LISTEN: http.listen: "),
        "the override is named: {err}"
    );
}

#[test]
fn a_public_listen_address_is_served_with_a_token_or_an_explicit_opt_out() {
    let config = load("http: {listen: '0.0.0.0:8787', token: s3cret}", &[]).unwrap();
    assert_eq!(config.http.unwrap().token.unwrap().expose(), "s3cret");
    let config = load(
        "http: {listen: '0.0.0.0:8787', insecure_no_auth: true}",
        &[],
    )
    .unwrap();
    assert!(config.http.unwrap().insecure_no_auth);
    for yaml in [
        "http: {}",
        "http: {listen: '[::1]:8787'}",
        "http: {listen: '127.0.0.2:1'}",
    ] {
        load(yaml, &[]).unwrap_or_else(|e| panic!("{yaml}: loopback needs no token: {e}"));
    }
}

#[test]
fn a_token_that_expands_to_nothing_is_an_error_not_authentication_off() {
    let err = load(
        "http:\n  token: ${WXBRIDGE_TOKEN}\n",
        &[("WXBRIDGE_TOKEN", "")],
    )
    .unwrap_err();
    assert!(
        err.starts_with("bridge.yaml: http.token: environment variable WXBRIDGE_TOKEN is empty"),
        "{err}"
    );
    let err = load("http: {token: tok}", &[("WXBRIDGE__HTTP__TOKEN", "")]).unwrap_err();
    assert!(err.starts_with("WXBRIDGE__HTTP__TOKEN: is empty"), "{err}");
    let err = load("http: {token: ''}", &[]).unwrap_err();
    assert!(
        err.starts_with("bridge.yaml: http.token: is empty"),
        "{err}"
    );
    // Optional on purpose: `${VAR:-}`, or an explicit null.
    let config = load(
        "http:\n  token: ${WXBRIDGE_TOKEN:-}\n",
        &[("WXBRIDGE_TOKEN", "")],
    )
    .unwrap();
    assert_eq!(config.http.unwrap().token, None);
    let config = load("http: {token: tok}", &[("WXBRIDGE__HTTP__TOKEN", "null")]).unwrap();
    assert_eq!(config.http.unwrap().token, None);
    // A token from the environment still counts on a public address.
    let config = load(
        "http:\n  listen: 0.0.0.0:8787\n  token: ${WXBRIDGE_TOKEN}\n",
        &[("WXBRIDGE_TOKEN", "t0k")],
    )
    .unwrap();
    assert_eq!(config.http.unwrap().token.unwrap().expose(), "t0k");
}

#[test]
fn allowed_hosts_are_host_names_with_an_optional_port() {
    let err = load("http: {allowed_hosts: [bridge.lan, 'http://x/']}", &[]).unwrap_err();
    assert!(
        err.starts_with("bridge.yaml: http.allowed_hosts[1]: must be a host name"),
        "{err}"
    );
    let http = load(
        "http: {allowed_hosts: ['bridge.lan', 'bridge.lan:8443']}",
        &[],
    )
    .unwrap()
    .http
    .unwrap();
    assert_eq!(http.allowed_hosts, ["bridge.lan", "bridge.lan:8443"]);
}

#[test]
fn the_public_url_is_http_or_https() {
    let err = load("http: {public_url: 'ftp://x/'}", &[]).unwrap_err();
    assert!(
        err.starts_with("bridge.yaml: http.public_url: must start with http:// or https://"),
        "{err}"
    );
    let http = load("http: {public_url: 'https://bridge.example/'}", &[])
        .unwrap()
        .http
        .unwrap();
    assert_eq!(http.public_url.unwrap().scheme(), "https");
}

#[test]
fn max_connections_is_at_least_one() {
    let err = load("http: {max_connections: 0}", &[]).unwrap_err();
    assert!(
        err.starts_with("bridge.yaml: http.max_connections: must be at least 1"),
        "{err}"
    );
    let http = load("http: {max_connections: 10}", &[])
        .unwrap()
        .http
        .unwrap();
    assert_eq!(http.max_connections, 10);
    assert_eq!(
        HttpConfig::default().max_connections,
        HttpConfig::DEFAULT_MAX_CONNECTIONS
    );
}
