//! Unit tests of `fetch`: the address and URL checks, then the fetcher against a local server.
use super::*;

#[test]
fn private_and_special_addresses_are_not_public() {
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "192.0.0.8",
        "240.0.0.1",
        "::",
        "::1",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:c0a8:101::1",
        "2001::1",
        "100::1",
        "::127.0.0.1",
    ] {
        assert!(!is_public(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ] {
        assert!(is_public(ip.parse().unwrap()), "{ip}");
    }
}

fn check(allow: &[&str], url: &str) -> Result<(), String> {
    let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
    AllowHosts::new(&allow)
        .check(&Url::parse(url).unwrap())
        .map_err(|r| r.0)
}

#[test]
fn urls_are_refused_by_scheme_list_and_literal_address() {
    assert!(check(&[], "https://example.com/a.jpg").is_ok());
    assert!(check(&[], "file:///etc/passwd")
        .unwrap_err()
        .contains("http"));
    assert!(check(&[], "ftp://example.com/x")
        .unwrap_err()
        .contains("http"));
    assert!(check(&[], "http://127.0.0.1:8123/x")
        .unwrap_err()
        .contains("public"));
    assert!(check(&[], "http://[::1]/x").unwrap_err().contains("public"));
    assert!(
        check(&[], "http://2130706433/x")
            .unwrap_err()
            .contains("public"),
        "a decimal IPv4 host is still 127.0.0.1"
    );
    assert!(check(&[], "http://169.254.169.254/latest").is_err());
    assert!(check(&["cam.local"], "https://example.com/a")
        .unwrap_err()
        .contains("allow_hosts"));
    assert!(check(&["*.example.com"], "https://cam.Example.com/a").is_ok());
    assert!(
        check(&["*.example.com"], "https://example.com/a").is_err(),
        "subdomains only"
    );
    assert!(check(&["*.example.com"], "https://badexample.com/a").is_err());
    assert!(check(&["192.168.1.0/24"], "http://192.168.1.20/snap").is_ok());
    assert!(check(&["192.168.1.0/24"], "http://192.168.2.20/snap").is_err());
    assert!(check(&["192.168.1.0/24"], "http://[::ffff:192.168.1.9]/").is_ok());
    assert!(
        check(&["192.168.1.0/24"], "http://8.8.8.8/").is_err(),
        "the list is all"
    );
    assert!(
        check(&["192.168.1.0/24"], "http://camera.lan/").is_ok(),
        "its addresses decide"
    );
    assert!(check(&["fd00::/8"], "http://[fd12::1]/").is_ok());
    assert!(check(&["Cam.Local"], "http://cam.local/snap").is_ok());
    assert!(check(&["127.0.0.1"], "http://127.0.0.1:8123/x").is_ok());
    assert!(check(&["::1"], "http://[::1]:80/x").is_ok());
    assert!(
        check(&["localhost"], "http://127.0.0.1/x").is_err(),
        "listing a name does not list its address"
    );
}

mod served {
    //! The fetcher against a small HTTP server on 127.0.0.1: what the checks let through and
    //! what they stop, with the server counting what reached it.
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Serves `/redirect` (302 to `target`), `/big` (announces 10 MB) and anything else
    /// as 5 bytes, to the bridge's own User-Agent only (400 otherwise); counts requests.
    async fn server(target: String) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]).to_string();
                    let says_who = head
                        .to_ascii_lowercase()
                        .contains("\r\nuser-agent: wxbridge/");
                    let answer = if !says_who {
                        "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_string()
                    } else if head.starts_with("GET /redirect") {
                        format!(
                            "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
                        )
                    } else if head.starts_with("GET /big") {
                        "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\nxx".to_string()
                    } else {
                        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_string()
                    };
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        (port, hits)
    }

    fn fetcher(allow: &[&str]) -> Fetcher {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Fetcher::new(&allow, Duration::from_secs(10))
    }

    async fn body(f: &Fetcher, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let mut resp = f.open(&Url::parse(url).unwrap(), max).await?;
        let mut out = Vec::new();
        while let Some(chunk) = next_chunk(&mut resp).await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_listed_name_is_fetched_and_a_redirect_to_an_unlisted_loopback_is_refused() {
        let (port, hits) = server(String::new()).await;
        let f = fetcher(&["localhost"]);
        let got = body(&f, &format!("http://localhost:{port}/snap.jpg"), 100)
            .await
            .unwrap();
        assert_eq!(got, b"hello");
        let (port2, hits2) = server(format!("http://127.0.0.1:{port}/snap.jpg")).await;
        let e = body(&f, &format!("http://localhost:{port2}/redirect"), 100)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Forbidden(_)), "{e:?}");
        assert_eq!(
            hits2.load(Ordering::SeqCst),
            1,
            "the redirect itself was asked"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "its target never was");
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_without_a_connection() {
        let (port, hits) = server(String::new()).await;
        let e = body(&fetcher(&[]), &format!("http://localhost:{port}/x"), 100)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, FetchError::Forbidden(m) if m.contains("no public address")),
            "{e:?}"
        );
        let e = body(&fetcher(&[]), &format!("http://127.0.0.1:{port}/x"), 100)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Forbidden(_)), "{e:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_name_resolving_into_a_listed_block_is_fetched_on_that_address_only() {
        let (port, hits) = server(String::new()).await;
        let got = body(
            &fetcher(&["127.0.0.0/8"]),
            &format!("http://localhost:{port}/a"),
            100,
        )
        .await
        .unwrap();
        assert_eq!(got, b"hello");
        let e = body(
            &fetcher(&["10.0.0.0/8"]),
            &format!("http://localhost:{port}/a"),
            100,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FetchError::Forbidden(_)), "{e:?}");
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_announced_length_over_the_cap_is_too_large() {
        let (port, _) = server(String::new()).await;
        let e = body(
            &fetcher(&["127.0.0.1"]),
            &format!("http://127.0.0.1:{port}/big"),
            1000,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FetchError::TooLarge { limit: 1000 }), "{e:?}");
    }
}
