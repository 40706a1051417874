//! The three ways into a session (DESIGN.md "Login policy", PROTOCOL.md §1, §10): a stored
//! session resumed with webwxinit, a push login confirmed on the phone, and a QR scan. Each ends
//! in the same set-up: init, status notify, the contact book.
use std::time::Duration;

use thiserror::Error;

use super::client::{Credentials, WxClient, WxError};
use super::contacts::ContactBook;
use super::protocol::{self, BatchItem, LoginPoll, LoginRefused};
use super::session::{Session, StoredSession, SyncKeys};

/// What a person needs to see while logging in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginProgress {
    /// A QR code to scan; `content` is what it encodes.
    Qr {
        /// The login uuid.
        uuid: String,
        /// `https://login.weixin.qq.com/l/<uuid>`.
        content: String,
        /// How many QR codes expired before this one, in a row.
        expired_before: u32,
    },
    /// Scanned; waiting for the confirmation on the phone.
    Scanned,
    /// A push login was sent to the phone.
    PushSent,
    /// Confirmed; the session is being set up.
    Confirmed,
}

/// Why no session came of a login.
#[derive(Debug, Error)]
pub enum LoginError {
    /// ret 1203: WeChat bars this account from web login.
    #[error(transparent)]
    Forbidden(LoginRefused),
    /// Too many QR codes expired without a scan.
    #[error("{0} QR codes expired without being scanned")]
    QrExpired(u32),
    /// The phone declined the push login, or it timed out.
    #[error("the push login was not confirmed")]
    PushDeclined,
    /// A transport or protocol failure.
    #[error(transparent)]
    Wx(WxError),
}

impl From<WxError> for LoginError {
    fn from(e: WxError) -> Self {
        match e {
            WxError::LoginRefused(r @ LoginRefused::Forbidden { .. }) => LoginError::Forbidden(r),
            other => LoginError::Wx(other),
        }
    }
}

impl LoginError {
    /// Why WeChat cannot be reached, when that is why the login failed (see
    /// [`WxError::unreachable`]).
    pub fn unreachable(&self) -> Option<String> {
        match self {
            LoginError::Wx(e) => e.unreachable(),
            _ => None,
        }
    }
}

/// How many 408 answers a push login waits for before it gives up (about two minutes).
const PUSH_POLLS: u32 = 5;

/// Resumes a stored session: webwxinit with the stored credentials, keeping the stored
/// sync keys (when there are any) so no history is replayed (PROTOCOL.md §10, openwechat's
/// HotLogin). Without stored keys the session continues from init's SyncKey.
pub async fn resume(
    client: &WxClient,
    stored: &StoredSession,
    keys: Option<SyncKeys>,
) -> Result<Session, WxError> {
    restore_cookies(client, stored)?;
    establish(client, stored.credentials.clone(), keys).await
}

/// Puts the stored session's cookies (with their domains) into the client's jar.
fn restore_cookies(client: &WxClient, stored: &StoredSession) -> Result<(), WxError> {
    client
        .restore_cookies(&stored.cookies)
        .map_err(|detail| WxError::Garbage {
            endpoint: "session.json",
            detail,
        })
}

/// Push login: the phone is asked to confirm, no scan (PROTOCOL.md §1.6). Needs the stored
/// session's cookies (`webwxuvid`, `webwx_auth_ticket`, `wxuin`).
pub async fn push(
    client: &WxClient,
    stored: &StoredSession,
    progress: &(dyn Fn(LoginProgress) + Send + Sync),
) -> Result<Session, LoginError> {
    restore_cookies(client, stored)?;
    let hosts = &stored.credentials.hosts;
    let Some(uuid) = client
        .push_login(hosts, stored.credentials.ticket.wxuin)
        .await?
    else {
        return Err(LoginError::PushDeclined);
    };
    progress(LoginProgress::PushSent);
    let mut tip = 1;
    for _ in 0..PUSH_POLLS {
        match client.poll_login(Some(&hosts.login), &uuid, tip).await? {
            LoginPoll::Waiting => {}
            LoginPoll::Scanned => progress(LoginProgress::Scanned),
            LoginPoll::Confirmed { redirect_uri } => {
                progress(LoginProgress::Confirmed);
                return complete(client, &redirect_uri).await;
            }
            LoginPoll::Expired | LoginPoll::Cancelled | LoginPoll::Other(_) => break,
        }
        tip = 0;
    }
    Err(LoginError::PushDeclined)
}

/// QR login: a new QR for each expired or cancelled one, until one is confirmed or
/// `max_expired` expired in a row (PROTOCOL.md §1.1–§1.3).
pub async fn qr(
    client: &WxClient,
    max_expired: u32,
    progress: &(dyn Fn(LoginProgress) + Send + Sync),
) -> Result<Session, LoginError> {
    let mut expired = 0;
    loop {
        let uuid = client.jslogin().await?;
        progress(LoginProgress::Qr {
            content: protocol::qr_content(&uuid),
            uuid: uuid.clone(),
            expired_before: expired,
        });
        let mut tip = 1;
        loop {
            match client.poll_login(None, &uuid, tip).await? {
                LoginPoll::Waiting => {}
                LoginPoll::Scanned => progress(LoginProgress::Scanned),
                LoginPoll::Confirmed { redirect_uri } => {
                    progress(LoginProgress::Confirmed);
                    return complete(client, &redirect_uri).await;
                }
                LoginPoll::Expired => {
                    expired += 1;
                    tracing::info!(expired, "the QR code expired");
                    if expired >= max_expired {
                        return Err(LoginError::QrExpired(expired));
                    }
                    break;
                }
                LoginPoll::Cancelled => {
                    tracing::info!("the login was cancelled on the phone; showing a new QR code");
                    break;
                }
                LoginPoll::Other(code) => {
                    tracing::warn!(code, "unexpected login poll answer; showing a new QR code");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
            tip = 0;
        }
    }
}

/// A confirmed login: the ticket becomes a session.
async fn complete(client: &WxClient, redirect_uri: &str) -> Result<Session, LoginError> {
    let creds = client.new_login_page(redirect_uri).await?;
    Ok(establish(client, creds, None).await?)
}

/// webwxinit, statusnotify and the contact book. `keys` are the stored keys of a resumed
/// session; a new session takes the SyncKey init hands out.
async fn establish(
    client: &WxClient,
    mut creds: Credentials,
    keys: Option<SyncKeys>,
) -> Result<Session, WxError> {
    let init = client.init(&creds).await?;
    if !init.skey.is_empty() {
        creds.ticket.skey = init.skey.clone();
    }
    let keys = keys.unwrap_or_else(|| SyncKeys {
        sync_key: init.sync_key.clone(),
        sync_check_key: init.sync_key.clone(),
    });
    let user = init.user.clone();
    if let Err(e) = client.status_notify(&creds, &user.user_name).await {
        // The web client ignores this answer too; the session works without it.
        tracing::warn!(cause = %e, "status notify failed");
    }
    let mut book = ContactBook::new(user.clone());
    for c in init.contact_list {
        book.upsert(c);
    }
    for c in client.get_all_contacts(&creds).await? {
        book.upsert(c);
    }
    let groups: Vec<BatchItem> = book
        .iter()
        .filter(|c| c.is_group() && c.member_list.is_empty())
        .map(|c| BatchItem {
            user_name: c.user_name.clone(),
            encry_chat_room_id: String::new(),
        })
        .collect();
    for c in client.batch_get_contacts(&creds, &groups).await? {
        book.upsert(c);
    }
    tracing::info!(
        contacts = book.len(),
        groups = groups.len(),
        "logged in as {}",
        super::contacts::clean_name(&user.nick_name)
    );
    Ok(Session::new(client.clone(), creds, user, keys, book))
}
