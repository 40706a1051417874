//! The store's behaviour: streaming in, naming by content, permissions, limits, the index
//! rebuilt at open, and eviction by size and by age in least-recently-used order.
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::sniff::tests::png;
use super::store::hex;
use super::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn bounds(max_bytes: u64) -> Bounds {
    Bounds {
        max_bytes,
        max_age: 30 * DAY,
    }
}

fn sha_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            out.extend(
                files(&entry.path())
                    .into_iter()
                    .map(|f| format!("{name}/{f}")),
            );
        } else {
            out.push(name);
        }
    }
    out.sort();
    out
}

/// Puts `bytes` in the store as if stored earlier and last used `ago`.
fn seed(dir: &Path, bytes: &[u8], ago: Duration) -> String {
    let sha = sha_of(bytes);
    let shard = dir.join(&sha[..2]);
    fs::create_dir_all(&shard).unwrap();
    let path = shard.join(&sha);
    fs::write(&path, bytes).unwrap();
    let file = fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - ago).unwrap();
    sha
}

#[tokio::test]
async fn ingest_names_the_file_by_its_sha256_with_private_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("media");
    let store = MediaStore::open(root.clone(), bounds(1 << 20)).unwrap();
    assert_eq!(mode(&root), 0o700);

    let image = png(40, 30);
    let stored = store.ingest(&image[..], 1 << 20).await.unwrap();
    let sha = sha_of(&image);
    assert_eq!(stored.sha256, sha);
    assert_eq!(stored.size, image.len() as u64);
    assert_eq!(stored.mime, "image/png");
    assert_eq!((stored.width, stored.height), (Some(40), Some(30)));
    assert_eq!(stored.path, root.join(&sha[..2]).join(&sha));
    assert_eq!(fs::read(&stored.path).unwrap(), image);
    assert_eq!(mode(&stored.path), 0o600);
    assert_eq!(mode(&root.join(&sha[..2])), 0o700);
    assert_eq!(
        files(&root),
        [format!("{}/{sha}", &sha[..2])],
        "no temp file left"
    );
    assert_eq!(store.get(&sha), Some(stored));
}

#[tokio::test]
async fn the_writer_hashes_chunks_as_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path().into(), bounds(1 << 30)).unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = store.writer(1 << 20).unwrap();
    for chunk in bytes.chunks(7_001) {
        writer.write(chunk).await.unwrap();
    }
    let stored = writer.finish().await.unwrap();
    assert_eq!(stored.sha256, sha_of(&bytes));
    assert_eq!(stored.mime, OCTET_STREAM);
    assert_eq!((stored.width, stored.height), (None, None));
    assert_eq!(fs::read(&stored.path).unwrap(), bytes);
}

#[tokio::test]
async fn too_large_fails_as_soon_as_the_limit_is_passed_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path().into(), bounds(1 << 20)).unwrap();
    let mut writer = store.writer(10).unwrap();
    writer.write(b"0123456789").await.unwrap();
    assert_eq!(files(dir.path()).len(), 1, "the temp file while writing");
    let err = writer.write(b"x").await.unwrap_err();
    assert!(
        matches!(err, IngestError::TooLarge { limit: 10 }),
        "{err:?}"
    );
    assert!(files(dir.path()).is_empty(), "temp file removed at once");
    assert!(writer.write(b"y").await.is_err());

    let err = store.ingest(&[7u8; 11][..], 10).await.unwrap_err();
    assert!(matches!(err, IngestError::TooLarge { limit: 10 }));
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn an_unfinished_writer_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path().into(), bounds(1 << 20)).unwrap();
    let mut writer = store.writer(100).unwrap();
    writer.write(b"half a file").await.unwrap();
    drop(writer);
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn the_same_bytes_are_stored_once_and_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path().into(), bounds(1 << 20)).unwrap();
    let first = store.ingest(&b"same bytes"[..], 100).await.unwrap();
    let inode = fs::metadata(&first.path).unwrap();
    let second = store.ingest(&b"same bytes"[..], 100).await.unwrap();
    assert_eq!(first, second);
    let after = fs::metadata(&second.path).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(inode.ino(), after.ino(), "the stored file was not replaced");
    assert_eq!(files(dir.path()).len(), 1);
}

#[tokio::test]
async fn open_indexes_what_is_there_and_deletes_leftover_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let sha = seed(dir.path(), b"kept from last run", Duration::ZERO);
    fs::write(
        dir.path().join(".tmp-0123456789abcdef"),
        b"crashed mid-write",
    )
    .unwrap();
    fs::write(dir.path().join(&sha[..2]).join(".tmp-1"), b"also").unwrap();
    fs::write(dir.path().join("README"), b"not ours").unwrap();

    let store = MediaStore::open(dir.path().into(), bounds(1 << 20)).unwrap();
    let stored = store.get(&sha).expect("indexed at open");
    assert_eq!(stored.size, 18);
    assert_eq!(stored.mime, PLAIN_TEXT);
    assert_eq!(
        files(dir.path()),
        ["README".to_owned(), format!("{}/{sha}", &sha[..2])]
    );
}

#[tokio::test]
async fn get_refuses_what_is_not_a_sha256_and_forgets_files_removed_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path().into(), bounds(1 << 20)).unwrap();
    let stored = store.ingest(&b"here"[..], 100).await.unwrap();
    for bad in [
        "",
        "..",
        "../../etc/passwd",
        &stored.sha256.to_uppercase(),
        &stored.sha256[1..],
    ] {
        assert_eq!(store.get(bad), None, "{bad:?}");
    }
    assert_eq!(store.get(&sha_of(b"never stored")), None);
    fs::remove_file(&stored.path).unwrap();
    assert_eq!(store.get(&stored.sha256), None);
}

#[tokio::test]
async fn over_max_bytes_the_least_recently_used_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let old = seed(dir.path(), &[1; 400], 3 * DAY);
    let older = seed(dir.path(), &[2; 400], 4 * DAY);
    let recent = seed(dir.path(), &[3; 400], DAY);
    let store = MediaStore::open(dir.path().into(), bounds(1000)).unwrap();
    // 1200 bytes in a 1000-byte store: the least recently used one went at open.
    assert_eq!(store.get(&older), None);
    // Using `old` makes `recent` the least recently used.
    assert!(store.get(&old).is_some());
    let new = store.ingest(&[4u8; 400][..], 1000).await.unwrap();
    assert_eq!(store.get(&recent), None, "evicted for the new file");
    assert!(store.get(&old).is_some());
    assert!(store.get(&new.sha256).is_some());
    assert_eq!(files(dir.path()).len(), 2);
}

#[tokio::test]
async fn last_use_survives_a_restart_as_the_file_time() {
    let dir = tempfile::tempdir().unwrap();
    let a = seed(dir.path(), &[1; 400], 3 * DAY);
    let b = seed(dir.path(), &[2; 400], 2 * DAY);
    let store = MediaStore::open(dir.path().into(), bounds(1000)).unwrap();
    assert!(store.get(&a).is_some(), "a is now the most recently used");
    drop(store);
    let store = MediaStore::open(dir.path().into(), bounds(1000)).unwrap();
    store.ingest(&[3u8; 400][..], 1000).await.unwrap();
    assert_eq!(store.get(&b), None);
    assert!(store.get(&a).is_some());
}

#[tokio::test]
async fn a_file_larger_than_the_store_is_kept_until_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = MediaStore::open(dir.path().into(), bounds(100)).unwrap();
    let big = store.ingest(&[9u8; 150][..], 1000).await.unwrap();
    assert!(
        store.get(&big.sha256).is_some(),
        "the file just stored stays"
    );
    let next = store.ingest(&[8u8; 10][..], 1000).await.unwrap();
    assert_eq!(store.get(&big.sha256), None);
    assert!(store.get(&next.sha256).is_some());
}

#[tokio::test]
async fn files_unused_for_max_age_are_evicted_at_open_and_later() {
    let dir = tempfile::tempdir().unwrap();
    let stale = seed(dir.path(), b"stale", 31 * DAY);
    let fresh = seed(dir.path(), b"fresh", 29 * DAY);
    let store = MediaStore::open(dir.path().into(), bounds(1 << 20)).unwrap();
    assert_eq!(store.get(&stale), None);
    assert!(store.get(&fresh).is_some());
    assert!(!dir.path().join(&stale[..2]).join(&stale).exists());

    // The fresh file was just used; in 31 days it is stale too.
    assert_eq!(store.evict(SystemTime::now() + 29 * DAY, None), 0);
    assert_eq!(store.evict(SystemTime::now() + 31 * DAY, None), 1);
    assert_eq!(store.get(&fresh), None);
}

#[tokio::test]
async fn upkeep_evicts_files_as_they_grow_old() {
    let dir = tempfile::tempdir().unwrap();
    let bounds = Bounds {
        max_bytes: 1 << 20,
        max_age: Duration::from_secs(1),
    };
    let store = MediaStore::open(dir.path().into(), bounds).unwrap();
    let stored = store.ingest(&b"short-lived"[..], 100).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let upkeep = tokio::spawn(
        store
            .clone()
            .upkeep(Duration::from_millis(100), shutdown.clone()),
    );
    // Looked at on disk: `get` would count as a use and keep it young.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stored.path.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !stored.path.exists(),
        "evicted about a second after its last use"
    );
    assert_eq!(store.get(&stored.sha256), None);
    shutdown.cancel();
    upkeep.await.unwrap();
}

#[test]
fn a_sha256_is_64_lowercase_hex_digits() {
    assert!(is_sha256(&"a".repeat(64)));
    assert!(is_sha256(&sha_of(b"x")));
    assert!(!is_sha256(&"A".repeat(64)));
    assert!(!is_sha256(&"a".repeat(63)));
    assert!(!is_sha256(&format!("{}/", "a".repeat(63))));
    assert!(!is_sha256(&"g".repeat(64)));
}

#[test]
fn signed_urls_use_media_public_url_then_http_public_url_then_the_listen_address() {
    use crate::config::HttpConfig;
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::config::Config {
        state_dir: dir.path().to_owned(),
        ..Default::default()
    };
    config.media.dir = None;
    let sha = sha_of(b"x");
    let base = |config: &crate::config::Config| {
        Media::open(config)
            .unwrap()
            .signed_url(&sha)
            .map(|u| u[..url::Position::AfterPath].to_owned())
    };
    assert_eq!(base(&config), None, "no HTTP listener: no link");
    config.http = Some(HttpConfig::default());
    assert_eq!(
        base(&config).as_deref(),
        Some(format!("http://127.0.0.1:8787/media/{sha}").as_str())
    );
    config.http.as_mut().unwrap().public_url = Some("https://proxy.example/wx".parse().unwrap());
    assert_eq!(
        base(&config).as_deref(),
        Some(format!("https://proxy.example/wx/media/{sha}").as_str())
    );
    config.media.public_url = Some("https://media.example/".parse().unwrap());
    let media = Media::open(&config).unwrap();
    let url = media.signed_url(&sha).unwrap();
    assert!(url
        .as_str()
        .starts_with(&format!("https://media.example/media/{sha}?exp=")));
    let exp: u64 = url
        .query_pairs()
        .find(|(k, _)| k == "exp")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let week = DEFAULT_VALIDITY.as_secs();
    assert!(
        (unix_now() + week - 5..=unix_now() + week).contains(&exp),
        "7 days"
    );
    let sig = url
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .unwrap()
        .1
        .into_owned();
    assert!(media.signer.verify(&sha, exp, &sig, unix_now()));
    assert!(
        dir.path().join("media").is_dir(),
        "<state_dir>/media by default"
    );
}
