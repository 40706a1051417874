//! Behaviour of `accounts:`: its rules, the per-account sections merged over the shared ones,
//! overrides that reach an account, error keys that name the account, and the views.

use std::path::Path;
use std::time::Duration;

use super::test_support::{parse_err, parse_ok};
use super::*;

const TWO: &str = "state_dir: /srv/wx\naccounts:\n  - account: home\n  - account: office\n";

#[test]
fn accounts_give_one_view_per_account_with_its_own_state_dir() {
    let config = parse_ok(&format!("{TWO}mqtt: {{}}\nretry: {{max: 1m}}\n"), &[]);
    assert!(config.several_accounts());
    assert_eq!(config.account_names(), ["home", "office"]);
    let views = config.accounts();
    let names: Vec<_> = views.iter().map(|v| v.account.as_str()).collect();
    assert_eq!(names, ["home", "office"]);
    assert_eq!(views[0].state_dir, Path::new("/srv/wx/home"));
    assert_eq!(views[1].state_dir, Path::new("/srv/wx/office"));
    for view in &views {
        assert!(!view.several_accounts(), "a view is one account");
        assert_eq!(view.accounts(), std::slice::from_ref(view));
        assert_eq!(view.mqtt, config.mqtt, "mqtt is shared");
        assert_eq!(view.retry.max, Duration::from_secs(60), "retry is shared");
    }
}

#[test]
fn the_top_level_account_is_one_view_in_the_state_dir_itself() {
    let config = parse_ok("account: home\nstate_dir: /srv/wx\n", &[]);
    assert!(!config.several_accounts());
    assert_eq!(config.account_names(), ["home"]);
    assert_eq!(config.accounts(), std::slice::from_ref(&config));
    assert_eq!(config.accounts()[0].state_dir, Path::new("/srv/wx"));
}

#[test]
fn each_account_keeps_its_qr_file_and_media_store_in_its_own_state_dir() {
    let config = parse_ok(TWO, &[]);
    let views = config.accounts();
    assert_eq!(views[0].wechat.qr_png, Path::new("/srv/wx/home/qr.png"));
    assert_eq!(views[1].wechat.qr_png, Path::new("/srv/wx/office/qr.png"));
    assert_eq!(
        views[0].media.dir.as_deref(),
        Some(Path::new("/srv/wx/home/media"))
    );
    assert_eq!(
        views[1].media.dir.as_deref(),
        Some(Path::new("/srv/wx/office/media"))
    );
    let own = parse_ok(
        &format!("{TWO}    media: {{dir: /data/office-media}}\n    wechat: {{qr_png: null}}\n"),
        &[],
    );
    let views = own.accounts();
    assert_eq!(
        views[1].media.dir.as_deref(),
        Some(Path::new("/data/office-media"))
    );
    assert_eq!(views[1].wechat.qr_png, Path::new("/srv/wx/office/qr.png"));
}

#[test]
fn an_account_section_changes_only_the_keys_it_sets() {
    let config = parse_ok(
        "accounts:\n  - account: home\n  - account: office\n    wechat: {desktop_mode: false}\n    \
         send: {limits: {per_day: 50}, allow: [Boss]}\n\
         wechat: {zombie_after: 10m}\nsend: {allow: [Mom, Dad], limits: {per_day: 300, jitter: [1s, 2s]}}\n",
        &[],
    );
    let [home, office] = <[Config; 2]>::try_from(config.accounts()).unwrap();
    assert!(home.wechat.desktop_mode);
    assert!(!office.wechat.desktop_mode);
    assert_eq!(
        office.wechat.zombie_after,
        Duration::from_secs(600),
        "shared key kept"
    );
    assert_eq!(home.send.limits.per_day, 300);
    assert_eq!(office.send.limits.per_day, 50);
    assert_eq!(
        office.send.limits.jitter, home.send.limits.jitter,
        "a nested section merges key by key"
    );
    assert_eq!(home.send.allow, ["Mom", "Dad"]);
    assert_eq!(
        office.send.allow,
        ["Boss"],
        "a list is replaced, not appended to"
    );
}

#[test]
fn account_and_accounts_together_are_refused_naming_both() {
    let err = parse_err("account: home\naccounts: [{account: home}]\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: accounts: set either `account` (one account) or `accounts`"),
        "{err}"
    );
    let err = parse_err(
        "account: home\n",
        &[("WXBRIDGE__ACCOUNTS__0__ACCOUNT", "home")],
    );
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn account_names_must_be_valid_unique_and_at_least_one() {
    let err = parse_err("accounts:\n  - account: home\n  - account: home\n", &[]);
    assert_eq!(
        err,
        "bridge.yaml: accounts[1].account: \"home\" is already the name of accounts[0]; \
         each account needs its own"
    );
    let err = parse_err("accounts:\n  - account: 'my home'\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: accounts[0].account: must be letters, digits"),
        "{err}"
    );
    let err = parse_err("accounts:\n  - account: ../up\n", &[]);
    assert!(
        err.contains("accounts[0].account: must be letters"),
        "{err}"
    );
    let err = parse_err("accounts: []\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: accounts: must list at least one account"),
        "{err}"
    );
    let err = parse_err("accounts: home\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: accounts: expected a list"),
        "{err}"
    );
    let err = parse_err("accounts:\n  - wechat: {desktop_mode: false}\n", &[]);
    assert!(
        err.contains("accounts[0]: missing field `account`"),
        "{err}"
    );
}

#[test]
fn an_account_entry_takes_only_the_per_account_sections() {
    let err = parse_err("accounts:\n  - account: home\n    http: {}\n", &[]);
    assert_eq!(
        err,
        "bridge.yaml: unknown key \"accounts[0].http\" (known keys: account, wechat, send, media)"
    );
    let err = parse_err("accounts:\n  - account: home\n    wechat: {qr: x}\n", &[]);
    assert!(
        err.starts_with("bridge.yaml: unknown key \"accounts[0].wechat.qr\""),
        "{err}"
    );
    let err = parse_err(
        "accounts:\n  - account: home\n    wechat: {desktop_mode: maybe}\n",
        &[],
    );
    assert!(
        err.starts_with("bridge.yaml: accounts[0].wechat.desktop_mode: "),
        "{err}"
    );
}

#[test]
fn overrides_reach_an_account() {
    let config = parse_ok(
        TWO,
        &[
            ("WXBRIDGE__ACCOUNTS__1__WECHAT__DESKTOP_MODE", "false"),
            ("WXBRIDGE__ACCOUNTS__0__SEND__RATE__BURST", "9"),
        ],
    );
    let views = config.accounts();
    assert!(views[0].wechat.desktop_mode);
    assert!(!views[1].wechat.desktop_mode);
    assert_eq!(views[0].send.rate.burst, 9);
    assert_eq!(views[1].send.rate.burst, 5);

    let config = parse_ok(
        "",
        &[
            ("WXBRIDGE__ACCOUNTS__0__ACCOUNT", "home"),
            ("WXBRIDGE__ACCOUNTS__1__ACCOUNT", "office"),
        ],
    );
    assert_eq!(config.account_names(), ["home", "office"]);

    let err = parse_err(TWO, &[("WXBRIDGE__ACCOUNTS__1__SEND__RATE__BURST", "0")]);
    assert_eq!(
        err,
        "WXBRIDGE__ACCOUNTS__1__SEND__RATE__BURST: accounts[1].send.rate.burst: \
         must be at least 1 (got 0)"
    );
}

#[test]
fn a_rule_broken_in_an_account_section_names_the_account_entry() {
    let err = parse_err(&format!("{TWO}    send: {{rate: {{burst: 0}}}}\n"), &[]);
    assert_eq!(
        err,
        "bridge.yaml: accounts[1].send.rate.burst: must be at least 1 (got 0)"
    );
    let err = parse_err(&format!("{TWO}    wechat: {{login_url: 'ftp://x'}}\n"), &[]);
    assert!(
        err.starts_with("bridge.yaml: accounts[1].wechat.login_url: must start with http://"),
        "{err}"
    );
    let err = parse_err(&format!("{TWO}    send: {{allow: [Mom, '']}}\n"), &[]);
    assert!(
        err.contains("accounts[1].send.allow[1]: must name"),
        "{err}"
    );
    let err = parse_err(&format!("{TWO}    media: {{max_file_bytes: 3GiB}}\n"), &[]);
    assert!(
        err.starts_with("bridge.yaml: accounts[1].media.max_file_bytes: must not be larger"),
        "{err}"
    );
}

#[test]
fn a_rule_broken_in_a_shared_section_names_the_shared_key() {
    let err = parse_err(&format!("{TWO}send: {{rate: {{burst: 0}}}}\n"), &[]);
    assert_eq!(
        err,
        "bridge.yaml: send.rate.burst: must be at least 1 (got 0) \
         (the shared value, as account home uses it)"
    );
    let err = parse_err(&format!("{TWO}wechat: {{zombie_after: soon}}\n"), &[]);
    assert!(
        err.starts_with("bridge.yaml: wechat.zombie_after: "),
        "{err}"
    );
    // Listed before the shared section, with a section of its own: still the shared key.
    let err = parse_err(
        "accounts:\n  - account: home\n    wechat: {desktop_mode: false}\nwechat: {qr: x}\n",
        &[],
    );
    assert!(
        err.starts_with("bridge.yaml: unknown key \"wechat.qr\""),
        "{err}"
    );
    let err = parse_err(
        "accounts:\n  - account: home\n    wechat: {desktop_mode: false}\nwechat: {zombie_after: soon}\n",
        &[],
    );
    assert!(
        err.starts_with("bridge.yaml: wechat.zombie_after: "),
        "{err}"
    );
    // Overridden by every account, the shared value is never used, so it breaks nothing.
    parse_ok(
        "accounts:\n  - account: home\n    send: {rate: {burst: 2}}\nsend: {rate: {burst: 0}}\n",
        &[],
    );
}

#[test]
fn accounts_may_not_share_a_qr_file_or_a_media_store() {
    let err = parse_err(&format!("{TWO}wechat: {{qr_png: /tmp/qr.png}}\n"), &[]);
    assert!(
        err.starts_with(
            "bridge.yaml: wechat.qr_png: /tmp/qr.png is also the QR file of accounts[0] (home)"
        ),
        "{err}"
    );
    let err = parse_err(
        "accounts:\n  - account: home\n    media: {dir: /m}\n  - account: office\n    media: {dir: /m}\n",
        &[],
    );
    assert!(
        err.starts_with("bridge.yaml: accounts[1].media.dir: /m is also the media store"),
        "{err}"
    );
}

#[test]
fn the_mqtt_client_id_defaults_to_the_first_account() {
    let config = parse_ok(&format!("{TWO}mqtt: {{}}\n"), &[]);
    assert_eq!(config.mqtt.unwrap().client_id, "wxbridge-home");
}

#[test]
fn effective_yaml_shows_each_account_and_loads_back() {
    let config = parse_ok(
        &format!("{TWO}    wechat: {{desktop_mode: false}}\nsend: {{allow: [Mom]}}\n"),
        &[],
    );
    let shown = config.effective_yaml();
    let tree: yaml_serde::Value = yaml_serde::from_str(&shown).unwrap();
    assert!(tree.get("account").is_none(), "{shown}");
    assert!(tree.get("wechat").is_none(), "{shown}");
    assert_eq!(tree["accounts"][1]["account"].as_str(), Some("office"));
    assert_eq!(
        tree["accounts"][1]["wechat"]["desktop_mode"].as_bool(),
        Some(false)
    );
    assert_eq!(
        tree["accounts"][0]["send"]["allow"][0].as_str(),
        Some("Mom")
    );
    assert_eq!(parse_ok(&shown, &[]).accounts(), config.accounts());

    let single = parse_ok("account: home\n", &[]).effective_yaml();
    assert!(!single.contains("accounts"), "{single}");
}

#[test]
fn the_example_files_accounts_load_as_documented() {
    // The commented `accounts:` block of bridge.example.yaml, uncommented.
    let example = include_str!("../../bridge.example.yaml");
    let block: String = example
        .lines()
        .skip_while(|line| !line.starts_with("# accounts:"))
        .take_while(|line| line.starts_with("# "))
        .map(|line| format!("{}\n", &line[2..]))
        .collect();
    let config = parse_ok(&block, &[]);
    let views = config.accounts();
    assert_eq!(config.account_names(), ["home", "office"]);
    assert!(views[0].wechat.desktop_mode && !views[1].wechat.desktop_mode);
    assert_eq!(views[1].send.allow, ["Boss"]);
}
