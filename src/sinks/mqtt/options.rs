//! The `mqtt` config section turned into rumqttc options: the persistent session, the last
//! will, raised packet limits and, for `mqtts://`, a rustls config we build ourselves (rumqttc's
//! own default panics when the platform certificates cannot be loaded, CRATES.md §1.4).
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, NetworkOptions, QoS, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::MqttError;
use crate::config::MqttConfig;

/// The largest event the bridge publishes. rumqttc's default is 10 KiB, which an event
/// carrying `raw` or a QR PNG exceeds.
pub(super) const MAX_PACKET: usize = 16 * 1024 * 1024;

/// The largest media packet (`mqtt.media`, Home Assistant's last image): the most MQTT can
/// frame, which is also rumqttc's outgoing limit here. A larger one would fail rumqttc's size
/// check, and that ends the connection; such a file is skipped instead (`media.rs`).
pub(super) const MAX_MEDIA_PACKET: usize = MAX_INCOMING;

/// The largest packet the bridge reads: the most MQTT can frame (the remaining length's
/// four-byte limit, MQTT 3.1.1 §2.2.3), so rumqttc's size check never fails. A failed check
/// ends the connection, and the broker then hands the same packet over again after the
/// reconnect (an unacked QoS 1 command of the persistent session, a retained message on a
/// subscribed topic): the link would be wedged for good. What a packet can cost is bounded by
/// the broker's own limit instead (mosquitto's `message_size_limit`, which is this same
/// maximum by default); the poller keeps no more of a command than `send.max_bytes + 1`
/// bytes.
pub(super) const MAX_INCOMING: usize = 268_435_455;

/// The broker drops us after 1.5× this without traffic; rumqttc pings in between.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Where Linux distributions keep the system CA bundle (the list openssl-probe uses).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
];

/// The QoS from the config's number, which the loader has bounded to 0, 1 or 2.
pub(super) fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The client options for `config`, with the last will `offline` on `will` (the account's
/// status, or the process's with several accounts: see the module docs of `mqtt`). The section's
/// values were checked by the loader (`config/validate.rs`: scheme, host, client id, QoS,
/// certificate and key together); what fails here is the TLS files and rustls.
pub(super) fn build(config: &MqttConfig, will: &str) -> Result<MqttOptions, MqttError> {
    let url = &config.url;
    let tls = url.scheme() == "mqtts";
    let host = match url.host() {
        // rumqttc joins host and port as text; an IPv6 literal needs its brackets for that.
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });

    let mut options = MqttOptions::new(config.client_id.clone(), host, port);
    options
        .set_clean_session(false)
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(MAX_INCOMING, MAX_MEDIA_PACKET)
        // Commands are acked only once the bridge has them (DESIGN.md "Outbound command").
        .set_manual_acks(true)
        .set_last_will(LastWill::new(will, "offline", QoS::AtLeastOnce, true));
    if let Some(user) = &config.username {
        let password = config.password.as_ref().map(|p| p.expose()).unwrap_or("");
        options.set_credentials(user.clone(), password);
    }
    if tls {
        let tls = tls_config(config)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    Ok(options)
}

/// The socket options: `TCP_NODELAY` on. rumqttc leaves Nagle's algorithm on, and every
/// packet the bridge writes is small: a send result or a command's PUBACK written while the
/// broker has not yet acknowledged the previous small write waits for the broker's delayed ACK,
/// some 40 ms on Linux. `NetworkOptions::new`, not `default`: only `new` keeps rumqttc's 5 s
/// connect timeout (`default` makes it zero).
pub(super) fn network() -> NetworkOptions {
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

/// The rustls client config: the system CA bundle plus `ca_file`, and the client identity
/// when `cert_file`/`key_file` are set. The provider is named here rather than taken from the
/// process default, so this works whether or not `main` installed one (CRATES.md §1.9).
fn tls_config(config: &MqttConfig) -> Result<Arc<ClientConfig>, MqttError> {
    let mut roots = RootCertStore::empty();
    if let Some(bundle) = system_bundle() {
        // A broken entry in the system bundle is not ours to fix; the rest still counts.
        if let Ok(certs) = CertificateDer::pem_file_iter(&bundle) {
            roots.add_parsable_certificates(certs.flatten());
        }
    }
    if let Some(ca) = &config.ca_file {
        for cert in read_certs("mqtt.ca_file", ca)? {
            roots.add(cert).map_err(MqttError::Tls)?;
        }
    }
    if roots.is_empty() {
        return Err(MqttError::NoTrustedCa);
    }

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&config.cert_file, &config.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("mqtt.cert_file", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| MqttError::Pem {
                key: "mqtt.key_file",
                path: key.clone(),
                cause: e.to_string(),
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        // Only one of the two set is refused by the loader.
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The system CA bundle: `SSL_CERT_FILE` when set, else the first well-known path that exists.
fn system_bundle() -> Option<std::path::PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return Some(file.into());
    }
    SYSTEM_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

/// Every certificate in a PEM file; at least one.
fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttError> {
    let pem_error = |e: rustls::pki_types::pem::Error| MqttError::Pem {
        key,
        path: path.to_path_buf(),
        cause: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(MqttError::NoCertificate {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.parse().unwrap(),
            ..MqttConfig::default()
        }
    }

    const WILL: &str = "wechat/home/status";

    #[test]
    fn a_plain_url_gives_a_persistent_session_with_the_offline_will() {
        let mut c = config("mqtt://broker.lan");
        c.client_id = "wxbridge-home".into();
        let o = build(&c, WILL).unwrap();
        assert_eq!(o.broker_address(), ("broker.lan".to_owned(), 1883));
        assert!(!o.clean_session());
        assert!(o.manual_acks());
        assert_eq!(o.client_id(), "wxbridge-home");
        assert_eq!(
            o.max_packet_size(),
            MAX_INCOMING,
            "nothing a broker sends breaks the link"
        );
        let will = o.last_will().unwrap();
        assert_eq!(will.topic, "wechat/home/status");
        assert_eq!(&will.message[..], b"offline");
        assert!(will.retain);
        assert_eq!(will.qos, QoS::AtLeastOnce);
    }

    #[test]
    fn ipv6_hosts_keep_their_brackets_and_mqtts_defaults_to_8883() {
        let o = build(&config("mqtt://[::1]:1999"), WILL).unwrap();
        assert_eq!(o.broker_address(), ("[::1]".to_owned(), 1999));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut c = config("mqtts://broker.lan");
        c.ca_file = Some(ca);
        // The file holds no certificate: the error names the key and the file.
        let e = build(&c, WILL).unwrap_err().to_string();
        assert!(e.starts_with("mqtt.ca_file:"), "{e}");
        assert!(e.contains("ca.pem"), "{e}");
    }

    #[test]
    fn an_unreadable_tls_file_names_its_key_and_path() {
        let mut c = config("mqtts://broker.lan");
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let e = build(&c, WILL).unwrap_err().to_string();
        assert!(e.starts_with("mqtt.ca_file:"), "{e}");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("client.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let mut c = config("mqtts://broker.lan");
        c.cert_file = Some(cert);
        c.key_file = Some(dir.path().join("missing.key"));
        let e = build(&c, WILL).unwrap_err().to_string();
        assert!(e.starts_with("mqtt.cert_file:"), "{e}");
    }
}
