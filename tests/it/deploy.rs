//! The shipped deployment: `docker-compose.yml` publishes nothing on all interfaces, since its
//! brokers run without authentication.
use std::net::IpAddr;

use yaml_serde::Value;

/// Where a published port listens on the host, if the entry names an address; `Err` says
/// why the entry cannot be read.
fn host_ip(port: &Value) -> Result<Option<IpAddr>, String> {
    let ip = |text: &str| {
        text.trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
            .map_err(|_| format!("not an IP address: {text:?}"))
    };
    match port {
        // Short syntax: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]; an IPv6 host IP is
        // bracketed.
        Value::String(text) => {
            let text = text.split('/').next().unwrap_or_default();
            if let Some(rest) = text.strip_prefix('[') {
                let (addr, _) = rest.split_once(']').ok_or("unclosed [")?;
                return ip(addr).map(Some);
            }
            let parts: Vec<&str> = text.split(':').collect();
            match parts.as_slice() {
                [addr, _, _] => ip(addr).map(Some),
                _ => Ok(None),
            }
        }
        Value::Number(_) => Ok(None),
        // Long syntax: `host_ip` is optional.
        Value::Mapping(map) => match map.get("host_ip") {
            Some(Value::String(text)) => ip(text).map(Some),
            None => Ok(None),
            Some(other) => Err(format!("host_ip is not a string: {other:?}")),
        },
        other => Err(format!("unreadable port entry: {other:?}")),
    }
}

#[test]
fn the_compose_file_publishes_no_port_on_all_interfaces() {
    let text = include_str!("../../docker-compose.yml");
    let compose: Value = yaml_serde::from_str(text).unwrap();
    let services = compose["services"].as_mapping().expect("services");
    let mut published = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert_ne!(
            service["network_mode"].as_str(),
            Some("host"),
            "{name} shares the host's network"
        );
        for port in service["ports"].as_sequence().into_iter().flatten() {
            published += 1;
            match host_ip(port) {
                Ok(Some(ip)) if ip.is_loopback() => {}
                other => panic!("{name} publishes {port:?} beyond loopback ({other:?})"),
            }
        }
    }
    assert!(published > 0, "the brokers stay reachable from the host");
}

#[test]
fn port_entries_are_read_as_compose_reads_them() {
    let s = |t: &str| Value::String(t.to_owned());
    assert_eq!(host_ip(&s("1883:1883")), Ok(None));
    assert_eq!(host_ip(&s("1883")), Ok(None));
    assert_eq!(host_ip(&Value::from(1883)), Ok(None));
    assert_eq!(
        host_ip(&s("127.0.0.1:1883:1883")),
        Ok(Some("127.0.0.1".parse().unwrap()))
    );
    assert_eq!(
        host_ip(&s("0.0.0.0:4222:4222/tcp")),
        Ok(Some("0.0.0.0".parse().unwrap()))
    );
    assert_eq!(
        host_ip(&s("[::1]:4222:4222")),
        Ok(Some("::1".parse().unwrap()))
    );
    let long: Value = yaml_serde::from_str("{target: 1883, published: 1883}").unwrap();
    assert_eq!(host_ip(&long), Ok(None));
    let long: Value =
        yaml_serde::from_str("{target: 1883, published: 1883, host_ip: 127.0.0.1}").unwrap();
    assert_eq!(host_ip(&long), Ok(Some("127.0.0.1".parse().unwrap())));
}

#[test]
fn the_compose_mosquitto_runs_the_shipped_config_with_nagle_off() {
    let compose: Value = yaml_serde::from_str(include_str!("../../docker-compose.yml")).unwrap();
    let mosquitto = &compose["services"]["mosquitto"];
    let command: Vec<&str> = mosquitto["command"]
        .as_sequence()
        .expect("a command")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let config = command[command.iter().position(|a| *a == "-c").expect("-c") + 1];
    let mount = format!("./deploy/mosquitto.conf:{config}:ro");
    assert!(
        mosquitto["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some(mount.as_str())),
        "mosquitto runs {config}, which is not deploy/mosquitto.conf"
    );
    let lines: Vec<&str> = include_str!("../../deploy/mosquitto.conf")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    for wanted in ["listener 1883", "set_tcp_nodelay true"] {
        assert!(
            lines.contains(&wanted),
            "deploy/mosquitto.conf lacks {wanted:?}"
        );
    }
}
