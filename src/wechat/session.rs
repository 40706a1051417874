//! A live session and its persistence: the shared handle the sync loop and the sender both use,
//! and `state_dir/session.json`, which holds what a restart needs to resume without a scan.
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use serde::{Deserialize, Serialize};

use super::client::{
    Credentials, MediaMessage, SendError, UploadFile, Uploaded, WxClient, WxError,
};
use super::contacts::ContactBook;
use super::protocol::{self, Contact, SyncKey};

/// The format version of `session.json`; a different one is ignored (and a QR login follows).
const FORMAT_VERSION: u32 = 1;

/// What `session.json` holds (PROTOCOL.md §10: openwechat's layout, with the cookie domains).
/// The sync keys are not here: they live in the spool, committed with the events of each sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSession {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// Hosts, skey, wxsid, wxuin, pass_ticket, DeviceID.
    pub credentials: Credentials,
    /// Self, as webwxinit described it.
    pub user: Contact,
    /// Every cookie with its domain.
    pub cookies: serde_json::Value,
}

/// `state_dir/session.json`, written atomically with mode 0600.
#[derive(Debug, Clone)]
pub struct SessionFile {
    path: PathBuf,
}

impl SessionFile {
    /// The session file inside `state_dir`.
    pub fn in_dir(state_dir: &Path) -> SessionFile {
        SessionFile {
            path: state_dir.join("session.json"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored session, if there is a readable one of this format. A symbolic link in its
    /// place is refused (an error), not followed.
    pub fn load(&self) -> io::Result<Option<StoredSession>> {
        let mut bytes = Vec::new();
        let read = no_follow(fs::OpenOptions::new().read(true))
            .open(&self.path)
            .and_then(|mut f| io::Read::read_to_end(&mut f, &mut bytes));
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(explain_link(&self.path, e)),
        }
        match serde_json::from_slice::<StoredSession>(&bytes) {
            Ok(s) if s.version == FORMAT_VERSION => Ok(Some(s)),
            Ok(s) => {
                tracing::warn!(
                    version = s.version,
                    "ignoring a session file of another version"
                );
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(cause = %e, path = %self.path.display(), "ignoring an unreadable session file");
                Ok(None)
            }
        }
    }

    /// Writes the session: a temp file with mode 0600 in the same directory, then a rename, so a
    /// crash leaves either the old file or the new one.
    pub fn save(&self, session: &StoredSession) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(session).map_err(io::Error::other)?;
        write_private_atomically(&self.path, &bytes)
    }

    /// Forgets the session.
    pub fn remove(&self) -> io::Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Creates `dir` with mode 0700 (and tightens an existing one), once it is known to belong to
/// this process's user.
///
/// A directory (or a link to one) that another user owns is refused: its owner could plant
/// symbolic links in it, or swap files, under the bridge's feet.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let ours = rustix::process::geteuid().as_raw();
        for meta in [fs::symlink_metadata(dir)?, fs::metadata(dir)?] {
            if let Some(problem) = foreign_owner(meta.uid(), meta.mode(), ours) {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, problem));
            }
        }
    }
    set_mode(dir, 0o700)
}

/// Why a state dir (or the link to it) with this owner and mode must not be used by `us`.
fn foreign_owner(owner: u32, mode: u32, us: u32) -> Option<String> {
    if owner == us {
        return None;
    }
    let writable = if mode & 0o022 != 0 {
        " and others can write to it"
    } else {
        ""
    };
    Some(format!(
        "it belongs to uid {owner}{writable}, but the bridge runs as uid {us}: whoever controls \
         the state directory can redirect the bridge's writes; give it to the bridge's user \
         (chown) or choose another state_dir"
    ))
}

/// Makes `options` refuse a symbolic link at the path instead of following it (`O_NOFOLLOW`):
/// one planted in the state dir would otherwise redirect a write, or a truncation, to any file
/// the bridge's user may write.
pub fn no_follow(options: &mut fs::OpenOptions) -> &mut fs::OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        options,
        rustix::fs::OFlags::NOFOLLOW.bits() as i32,
    );
    options
}

/// The error of an open through [`no_follow`], saying so when a link was the reason.
pub fn explain_link(path: &Path, e: io::Error) -> io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return io::Error::new(
            e.kind(),
            format!(
                "{} is a symbolic link, which the bridge does not follow in its state directory; \
                 remove it",
                path.display()
            ),
        );
    }
    let _ = path;
    e
}

/// Writes `bytes` to `path` through a 0600 temp file and a rename. The rename replaces
/// whatever is at `path`, a symbolic link included, without following it.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        // A leftover temp file, or a link planted in its place: remove the entry itself, then
        // create a new file there or fail.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = no_follow(&mut opts)
            .open(&tmp)
            .map_err(|e| explain_link(&tmp, e))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    set_mode(&tmp, 0o600)?;
    fs::rename(&tmp, path)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// The sync keys of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncKeys {
    /// For webwxsync.
    pub sync_key: SyncKey,
    /// For synccheck.
    pub sync_check_key: SyncKey,
}

impl SyncKeys {
    /// Takes the keys of a sync answer; a key whose Count is 0 is ignored (PROTOCOL.md §7).
    /// Returns true when something changed.
    pub fn update(&mut self, sync_key: SyncKey, sync_check_key: SyncKey) -> bool {
        let mut changed = false;
        if !sync_key.is_empty() && sync_key != self.sync_key {
            self.sync_key = sync_key;
            changed = true;
        }
        if !sync_check_key.is_empty() && sync_check_key != self.sync_check_key {
            self.sync_check_key = sync_check_key;
            changed = true;
        }
        changed
    }

    /// The key synccheck polls with: the SyncCheckKey when there is one (PROTOCOL.md §6).
    pub fn for_synccheck(&self) -> &SyncKey {
        if self.sync_check_key.is_empty() {
            &self.sync_key
        } else {
            &self.sync_check_key
        }
    }
}

/// A logged-in session, shared by the sync loop and the sender. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: WxClient,
    credentials: RwLock<Credentials>,
    user: Contact,
    keys: RwLock<SyncKeys>,
    book: RwLock<ContactBook>,
}

impl Session {
    /// A session from its parts.
    pub fn new(
        client: WxClient,
        credentials: Credentials,
        user: Contact,
        keys: SyncKeys,
        book: ContactBook,
    ) -> Session {
        Session {
            inner: Arc::new(Inner {
                client,
                credentials: RwLock::new(credentials),
                user,
                keys: RwLock::new(keys),
                book: RwLock::new(book),
            }),
        }
    }

    /// The HTTP client.
    pub fn client(&self) -> &WxClient {
        &self.inner.client
    }

    /// A copy of the current credentials.
    pub fn credentials(&self) -> Credentials {
        read(&self.inner.credentials).clone()
    }

    /// Takes a rotated skey (PROTOCOL.md §2): a non-empty SKey in an init or sync answer.
    /// True when it differs from the one held (only then is there anything to store).
    pub fn rotate_skey(&self, skey: &str) -> bool {
        if skey.is_empty() {
            return false;
        }
        match self.inner.credentials.write() {
            Ok(mut c) if c.ticket.skey != skey => {
                c.ticket.skey = skey.to_owned();
                true
            }
            _ => false,
        }
    }

    /// Self.
    pub fn user(&self) -> &Contact {
        &self.inner.user
    }

    /// True for clones of the same session.
    pub fn same_as(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A copy of the sync keys.
    pub fn keys(&self) -> SyncKeys {
        read(&self.inner.keys).clone()
    }

    /// Takes the keys of a sync answer; true when they changed.
    pub fn update_keys(&self, sync_key: SyncKey, sync_check_key: SyncKey) -> bool {
        self.inner
            .keys
            .write()
            .map(|mut k| k.update(sync_key, sync_check_key))
            .unwrap_or(false)
    }

    /// The contact book, for reading.
    pub fn book(&self) -> RwLockReadGuard<'_, ContactBook> {
        read(&self.inner.book)
    }

    /// Changes the contact book.
    pub fn with_book_mut<T>(&self, f: impl FnOnce(&mut ContactBook) -> T) -> T {
        let mut guard = self
            .inner
            .book
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// What `session.json` should hold now.
    pub fn to_stored(&self) -> StoredSession {
        StoredSession {
            version: FORMAT_VERSION,
            credentials: self.credentials(),
            user: self.inner.user.clone(),
            cookies: self.inner.client.save_cookies(),
        }
    }

    /// Sends a text to a UserName and answers WeChat's MsgID.
    pub async fn send_text(&self, to: &str, text: &str) -> Result<String, SendError> {
        let creds = self.credentials();
        let id = protocol::new_client_msg_id(now_ms());
        self.inner
            .client
            .send_text(&creds, &self.inner.user.user_name, to, text, &id)
            .await
    }
}

impl Session {
    /// Uploads a stored file for a message to `to` (PROTOCOL.md §9.2).
    pub async fn upload(&self, to: &str, file: UploadFile<'_>) -> Result<Uploaded, WxError> {
        let creds = self.credentials();
        self.inner
            .client
            .upload_media(&creds, &self.inner.user.user_name, to, file)
            .await
    }

    /// Sends an uploaded file to `to` and answers WeChat's MsgID (PROTOCOL.md §9.3).
    pub async fn send_media(
        &self,
        to: &str,
        message: MediaMessage<'_>,
        uploaded: &Uploaded,
    ) -> Result<String, SendError> {
        let creds = self.credentials();
        let id = protocol::new_client_msg_id(now_ms());
        self.inner
            .client
            .send_media(
                &creds,
                &self.inner.user.user_name,
                to,
                message,
                uploaded,
                &id,
            )
            .await
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wechat::protocol::KeyVal;

    fn key(v: u64) -> SyncKey {
        SyncKey {
            count: 1,
            list: vec![KeyVal { key: 1, val: v }],
        }
    }

    #[test]
    fn an_empty_key_in_an_answer_keeps_the_stored_one() {
        let mut keys = SyncKeys {
            sync_key: key(1),
            sync_check_key: key(1),
        };
        assert!(keys.update(key(2), SyncKey::default()));
        assert_eq!(keys.sync_key, key(2));
        assert_eq!(keys.sync_check_key, key(1));
        assert!(!keys.update(key(2), SyncKey::default()));
    }

    #[test]
    fn only_a_different_skey_counts_as_rotated() {
        let url =
            url::Url::parse("https://wx.qq.com/cgi-bin/mmwebwx-bin/webwxnewloginpage").unwrap();
        let credentials = Credentials {
            hosts: crate::wechat::hosts::Hosts::from_redirect(&url),
            ticket: crate::wechat::protocol::LoginTicket {
                skey: "@crypt_1".into(),
                wxsid: "sid".into(),
                wxuin: 1,
                pass_ticket: "pt".into(),
            },
            device_id: "e123456789012345".into(),
        };
        let session = Session::new(
            WxClient::new(url, false, Default::default()),
            credentials,
            Contact::default(),
            SyncKeys::default(),
            ContactBook::new(Contact::default()),
        );
        // The sync loop stores the session file (an fsync) only on `true`.
        assert!(!session.rotate_skey(""), "an empty SKey keeps the held one");
        assert!(
            !session.rotate_skey("@crypt_1"),
            "a repeated SKey changes nothing"
        );
        assert!(session.rotate_skey("@crypt_2"));
        assert_eq!(session.credentials().ticket.skey, "@crypt_2");
        assert!(!session.rotate_skey("@crypt_2"));
    }

    #[test]
    fn synccheck_prefers_the_sync_check_key() {
        let keys = SyncKeys {
            sync_key: key(1),
            sync_check_key: key(5),
        };
        assert_eq!(keys.for_synccheck(), &key(5));
        let only_sync = SyncKeys {
            sync_key: key(1),
            sync_check_key: SyncKey::default(),
        };
        assert_eq!(only_sync.for_synccheck(), &key(1));
    }

    #[cfg(unix)]
    #[test]
    fn session_file_is_private_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        ensure_private_dir(&state).unwrap();
        assert_eq!(
            fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let file = SessionFile::in_dir(&state);
        assert!(file.load().unwrap().is_none());
        write_private_atomically(file.path(), b"{\"version\":99}").unwrap();
        assert_eq!(
            fs::metadata(file.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(file.load().unwrap().is_none(), "another version is ignored");
        let leftovers: Vec<_> = fs::read_dir(&state).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file is left behind");
    }

    /// A file outside the state dir that planted links point at; it must stay as it is.
    #[cfg(unix)]
    fn victim(dir: &Path) -> PathBuf {
        let victim = dir.join("victim");
        fs::write(&victim, "precious").unwrap();
        victim
    }

    #[cfg(unix)]
    #[test]
    fn a_session_file_planted_as_a_link_is_refused_on_load_and_replaced_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        ensure_private_dir(&state).unwrap();
        let victim = victim(dir.path());
        let file = SessionFile::in_dir(&state);
        std::os::unix::fs::symlink(&victim, file.path()).unwrap();
        let err = file.load().unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        write_private_atomically(file.path(), b"{}").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(file.path()).unwrap().is_symlink());
        assert_eq!(fs::read(file.path()).unwrap(), b"{}");
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_as_the_temp_file_or_the_qr_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        ensure_private_dir(&state).unwrap();
        let victim = victim(dir.path());
        let qr = state.join("qr.png");
        let tmp = state.join(format!(".qr.png.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        std::os::unix::fs::symlink(&victim, &qr).unwrap();
        write_private_atomically(&qr, b"png").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read(&qr).unwrap(), b"png");
        assert!(!tmp.exists());
    }

    #[test]
    fn a_state_dir_of_another_user_is_refused() {
        assert_eq!(foreign_owner(1000, 0o700, 1000), None);
        assert_eq!(
            foreign_owner(1000, 0o777, 1000),
            None,
            "ours: tightened instead"
        );
        let other = foreign_owner(0, 0o1777, 1000).unwrap();
        assert!(
            other.contains("uid 0 and others can write to it"),
            "{other}"
        );
        assert!(foreign_owner(1001, 0o700, 1000).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn ensure_private_dir_refuses_a_directory_someone_else_owns() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        fs::create_dir(&state).unwrap();
        // Only root can give a directory away; elsewhere the pure rule above is the test.
        if std::os::unix::fs::chown(&state, Some(65534), None).is_err() {
            return;
        }
        let err = ensure_private_dir(&state).unwrap_err();
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
        let link = dir.path().join("link");
        fs::create_dir(dir.path().join("mine")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("mine"), &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
        let err = ensure_private_dir(&link).unwrap_err();
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
    }
}
