//! Discovery's configs: one device per account, its availability, slugs, and retraction.

use super::*;

fn discovery(targets: &[&str]) -> Discovery {
    let config = HomeAssistantConfig {
        notify_targets: targets.iter().map(|t| t.to_string()).collect(),
        ..HomeAssistantConfig::default()
    };
    Discovery::new(&config, &Topics::new("wechat", "home"), "home", None)
}

#[test]
fn every_message_type_is_an_event_type() {
    // A new variant fails to compile here until it is listed in MESSAGE_TYPES too.
    let position = |t: MessageType| match t {
        MessageType::Text => 0,
        MessageType::Location => 1,
        MessageType::Image => 2,
        MessageType::Voice => 3,
        MessageType::Video => 4,
        MessageType::Emoticon => 5,
        MessageType::FriendRequest => 6,
        MessageType::Card => 7,
        MessageType::Link => 8,
        MessageType::File => 9,
        MessageType::App => 10,
        MessageType::System => 11,
        MessageType::Revoke => 12,
        MessageType::Other => 13,
    };
    for (i, t) in MESSAGE_TYPES.iter().enumerate() {
        assert_eq!(position(*t), i);
    }
    assert_eq!(type_name(MessageType::FriendRequest), "friend_request");
    let state = |s: SessionState| match s {
        SessionState::Starting
        | SessionState::Online
        | SessionState::LoginRequired
        | SessionState::LoginForbidden
        | SessionState::Offline => SESSION_STATES.contains(&s),
    };
    assert!(SESSION_STATES.iter().all(|s| state(*s)));
}

#[test]
fn slugs_keep_plain_names_and_never_collide() {
    assert_eq!(slug("Mom"), "Mom");
    assert_eq!(slug("big-sis"), "big-sis");
    assert_eq!(slug("Family Group"), "Family_20Group");
    assert_eq!(slug("A_B"), "A_5fB");
    assert_eq!(slug("妈妈"), "_e5_a6_88_e5_a6_88");
    assert_ne!(slug("A B"), slug("A_B"));
    assert_ne!(slug("Mom"), slug("mom"));
}

#[test]
fn configs_are_under_the_node_and_stale_ones_are_recognized() {
    let d = discovery(&["Mom", "Family Group", "Mom", ""]);
    let topics: Vec<&str> = d.configs().iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics.len(), 10, "{topics:?}");
    assert!(topics.contains(&"homeassistant/notify/wxbridge_home/notify_Mom/config"));
    assert!(topics.contains(&"homeassistant/image/wxbridge_home/login_qr/config"));
    assert_eq!(d.notify_target("Family_20Group"), Some("Family Group"));
    assert_eq!(d.notify_target("Dad"), None);

    assert!(d.concerns("homeassistant/status"));
    assert!(d.concerns("homeassistant/notify/wxbridge_home/notify_Dad/config"));
    assert!(!d.concerns("homeassistant/notify/wxbridge_other/notify_Dad/config"));
    assert!(!d.concerns("wechat/home/send"));
    assert!(d.is_stale("homeassistant/notify/wxbridge_home/notify_Dad/config"));
    assert!(!d.is_stale("homeassistant/notify/wxbridge_home/notify_Mom/config"));
    assert!(!d.is_stale("homeassistant/status"));
}

#[test]
fn each_account_is_its_own_device_that_also_needs_the_process_status() {
    let config = HomeAssistantConfig {
        notify_targets: vec!["Mom".into()],
        ..HomeAssistantConfig::default()
    };
    let device = |account: &str| {
        let d = Discovery::new(
            &config,
            &Topics::new("wechat", account),
            account,
            Some("wechat/status"),
        );
        let configs: Vec<(String, Value)> = d
            .configs()
            .iter()
            .map(|(t, p)| (t.clone(), serde_json::from_slice(p).unwrap()))
            .collect();
        (d, configs)
    };
    let (home, home_configs) = device("home");
    let (office, office_configs) = device("office");
    for (account, configs) in [("home", &home_configs), ("office", &office_configs)] {
        assert_eq!(configs.len(), 9, "the same entities and notify targets");
        for (topic, v) in configs {
            assert!(topic.contains(&format!("/wxbridge_{account}/")), "{topic}");
            assert_eq!(
                v["device"]["identifiers"],
                json!([format!("wxbridge_{account}")])
            );
            assert_eq!(v["device"]["name"], format!("WeChat {account}"));
            let id = v["unique_id"].as_str().unwrap();
            assert!(id.starts_with(&format!("wxbridge_{account}_")), "{id}");
            assert_eq!(v["availability_mode"], "all", "{topic}");
            let topics: Vec<&str> = v["availability"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["topic"].as_str().unwrap())
                .collect();
            assert_eq!(
                topics[..2],
                ["wechat/status", &format!("wechat/{account}/status")]
            );
        }
    }
    let notify = |configs: &[(String, Value)]| {
        configs
            .iter()
            .find(|(t, _)| t.contains("/notify/"))
            .map(|(_, v)| v["command_topic"].clone())
            .unwrap()
    };
    assert_eq!(notify(&home_configs), "wechat/home/notify/Mom");
    assert_eq!(notify(&office_configs), "wechat/office/notify/Mom");
    // Each account recognizes only its own configs (and empties only its own stale ones).
    assert!(home.concerns("homeassistant/status") && office.concerns("homeassistant/status"));
    let office_topic = "homeassistant/sensor/wxbridge_office/session/config";
    assert!(office.concerns(office_topic) && !home.concerns(office_topic));
    assert!(!home.is_stale("homeassistant/notify/wxbridge_office/notify_Dad/config"));
}

#[test]
fn one_account_needs_only_its_own_status() {
    let d = discovery(&[]);
    for (topic, payload) in d.configs() {
        let v: Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(
            v["availability"][0]["topic"], "wechat/home/status",
            "{topic}"
        );
        if topic.contains("/login_qr/") {
            assert_eq!(v["availability"].as_array().unwrap().len(), 2);
            assert_eq!(v["availability_mode"], "all");
        } else {
            assert_eq!(v["availability"].as_array().unwrap().len(), 1, "{topic}");
            assert!(v.get("availability_mode").is_none(), "{topic}");
        }
    }
}

#[test]
fn disabled_discovery_publishes_nothing_and_retracts_everything() {
    let config = HomeAssistantConfig {
        enabled: false,
        notify_targets: vec!["Mom".into()],
        ..HomeAssistantConfig::default()
    };
    let d = Discovery::new(&config, &Topics::new("wechat", "home"), "home", None);
    assert!(d.configs().is_empty());
    assert_eq!(d.notify_target("Mom"), None);
    assert!(d.is_stale("homeassistant/sensor/wxbridge_home/session/config"));
    assert!(!d.enabled());
    assert_eq!(
        d.image_topic("homeassistant/image/wxbridge_home/last_image/config"),
        Some("wechat/home/homeassistant/last_image"),
        "a retracted image entity takes its image along"
    );
    assert_eq!(
        d.image_topic("homeassistant/image/wxbridge_home/login_qr/config"),
        Some("wechat/home/homeassistant/login_qr")
    );
    assert_eq!(
        d.image_topic("homeassistant/sensor/wxbridge_home/session/config"),
        None
    );
}
