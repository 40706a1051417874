//! The status page in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) loads it while the fake WeChat awaits a scan, then after the login and a message,
//! and the test reads the DOM the page's script built.
//!
//! `WXBRIDGE_UPDATE_SCREENSHOT=1` also writes `docs/status-page.png` for the README.
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use wxbridge_fake::Msg;

use crate::http::{eventually, start};
use crate::support::World;

const TOKEN: &str = "page-test-token";

/// Chromium's binary, if installed.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .chain([PathBuf::from("/usr/bin")])
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Runs headless Chromium on `url` with a fresh profile, letting the page's script run for a
/// few seconds of virtual time first; `what` is `--dump-dom` or `--screenshot=…`. Answers
/// stdout (the DOM, for `--dump-dom`).
async fn chromium_run(program: &Path, url: &str, what: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(program)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(what)
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("chromium finishes")
        .expect("chromium starts");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The start tag of the element with this id.
fn tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM:\n{dom}"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..=end]
}

#[tokio::test]
async fn the_page_shows_the_qr_until_the_scan_then_online_and_the_new_message() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "SKIPPED: chromium is not installed; `.ci/run` installs Debian's `chromium` for this test"
        );
        return;
    };
    let world = World::new().await;
    let alice = world.fake.add_contact("Alice", "Mom");
    let (mut bridge, api) = start(&world, &format!("  token: {TOKEN}\n"), &[]).await;
    bridge.wait_state("login_required").await;
    let api = api.with_token(TOKEN);
    eventually("the QR at /qr.png", || async {
        api.get("/qr.png").await.status() == reqwest::StatusCode::OK
    })
    .await;
    // The page login: the token once in the address, then the cookie.
    let page = format!("{}/?token={TOKEN}", api.base);

    let dom = chromium_run(&chromium, &page, &["--dump-dom"]).await;
    assert!(tag(&dom, "state").contains("state-login_required"), "{dom}");
    assert!(dom.contains(">login_required<"), "{dom}");
    assert!(
        !tag(&dom, "qr").contains("hidden"),
        "the QR is shown: {dom}"
    );
    assert!(
        !tag(&dom, "signout").contains("hidden"),
        "a page behind the token can sign out: {dom}"
    );
    let img = tag(&dom, "qr-img");
    // Relative to the page, so the same page works under `/accounts/<account>/`.
    assert!(img.contains("src=\"qr.png?v="), "{img}");
    assert!(
        img.contains("data-loaded=\"1\""),
        "the QR image loaded: {img}"
    );

    world.fake.scan();
    world.fake.confirm();
    bridge.wait_state("online").await;
    world
        .fake
        .queue(Msg::text(&alice, "dinner at <b>7</b> & bring cake?"));
    bridge.next_message().await;

    let dom = chromium_run(&chromium, &page, &["--dump-dom"]).await;
    assert!(tag(&dom, "state").contains("state-online"), "{dom}");
    assert!(dom.contains(">online<"), "{dom}");
    assert!(tag(&dom, "qr").contains("hidden"), "the QR is gone: {dom}");
    assert!(!dom.contains("qr.png?v="), "{dom}");
    assert!(
        dom.contains("dinner at &lt;b&gt;7&lt;/b&gt; &amp; bring cake?"),
        "the message is listed, as text: {dom}"
    );
    assert!(dom.contains(">Mom<"), "its sender is named: {dom}");

    if std::env::var_os("WXBRIDGE_UPDATE_SCREENSHOT").is_some() {
        // A friendlier message and a reply, so the feed shows a result too.
        world
            .fake
            .queue(Msg::text(&alice, "Can you pick up bread on the way?"));
        bridge.next_message().await;
        let r = api
            .post("/send", r#"{"to":"Mom","text":"yes, see you at 7"}"#)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert_eq!(r["ok"], true, "{r}");
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        chromium_run(
            &chromium,
            &page,
            &[
                &format!("--screenshot={}", file.display()),
                "--window-size=1000,600",
            ],
        )
        .await;
        assert!(std::fs::metadata(&file).unwrap().len() > 0);
    }
    assert_eq!(bridge.stop().await, 0);
}
