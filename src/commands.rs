//! The one-shot subcommands: `login`, `logout`, `contacts`, `send`, `check-config` (`run` is
//! [`crate::app`]). Every function answers the process exit code: 0 ok, 1 runtime failure
//! (DESIGN.md "Command line"); config errors (2) are handled before these run.
use std::process::ExitCode;

use crate::bridge::{refusal, show_login_progress};
use crate::config::{Config, ConfigError};
use crate::event::is_contact_key;
use crate::lock::{LockError, StateLock};
use crate::spool::{RedbSpool, Store};
use crate::wechat::client::{Timeouts, WxClient};
use crate::wechat::contacts::clean_name;
use crate::wechat::keys::{ContactKeys, SPOOL_VALUE};
use crate::wechat::login::{self, LoginError};
use crate::wechat::session::{ensure_private_dir, Session, SessionFile};

/// The account's spool in its state dir (as `run` opens it).
const SPOOL_FILE: &str = "spool.redb";

/// How many QR codes `login` shows before it gives up (DESIGN.md).
const LOGIN_QR_LIMIT: u32 = 5;

/// Says why on stderr; exit code 1.
pub(crate) fn failure(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("wxbridge: {message}");
    ExitCode::from(1)
}

fn client(config: &Config) -> WxClient {
    WxClient::new(
        config.wechat.login_url.clone(),
        config.wechat.desktop_mode,
        Timeouts::default(),
    )
}

/// Says what is wrong with the config on stderr; exit code 2.
pub(crate) fn refused(e: ConfigError) -> ExitCode {
    eprintln!("wxbridge: {e}");
    ExitCode::from(2)
}

/// The account a session command acts on: the view of `--account NAME` (DESIGN.md "Several
/// accounts"). With several accounts the name is required; with one it may be left out, but
/// must match when given. The error is a usage error (exit 2) that names the choices.
pub fn account_view(config: &Config, wanted: Option<&str>) -> Result<Config, String> {
    let names = config.account_names();
    let choices = names.join(", ");
    let mut views = config.accounts();
    match wanted {
        None if views.len() == 1 => Ok(views.remove(0)),
        None => Err(format!(
            "the config lists several accounts; name one with --account ({choices})"
        )),
        Some(name) => match views.iter().position(|v| v.account == name) {
            Some(index) => Ok(views.swap_remove(index)),
            None => Err(format!(
                "--account {name}: the config has no such account (it has: {choices})"
            )),
        },
    }
}

/// The state dir of one account's view, created private, and its lock; the dir records whose
/// state it holds (see [`crate::migrate`]). `running_hint` explains what to do instead when a
/// running bridge holds the lock. `run` takes one per account.
pub fn take_state(config: &Config, running_hint: &str) -> Result<StateLock, ExitCode> {
    if let Err(e) = ensure_private_dir(&config.state_dir) {
        return Err(failure(format!(
            "cannot use the state directory {}: {e}",
            config.state_dir.display()
        )));
    }
    let lock = StateLock::acquire(&config.state_dir).map_err(|e| match e {
        LockError::Held { .. } if !running_hint.is_empty() => {
            failure(format!("{e}.\n{running_hint}"))
        }
        e => failure(e),
    })?;
    if let Err(e) = crate::migrate::record_owner(&config.state_dir, &config.account) {
        return Err(failure(format!(
            "cannot write {} in {}: {e}",
            crate::migrate::OWNER_FILE,
            config.state_dir.display()
        )));
    }
    Ok(lock)
}

const WHILE_RUNNING: &str = "A running bridge owns the session: stop it first, or send through it \
    (publish to the send topic, or POST /send when the HTTP API is on).";

/// `login`: a QR login, stored for `run`.
pub async fn login(config: Config) -> ExitCode {
    let _lock = match take_state(&config, WHILE_RUNNING) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let client = client(&config);
    let qr_png = config.wechat.qr_png.clone();
    match login::qr(&client, LOGIN_QR_LIMIT, &move |p| {
        show_login_progress(&p, &qr_png);
    })
    .await
    {
        Ok(session) => {
            let file = SessionFile::in_dir(&config.state_dir);
            if let Err(e) = file.save(&session.to_stored()) {
                return failure(format!("logged in, but cannot store the session: {e}"));
            }
            let _ = std::fs::remove_file(&config.wechat.qr_png);
            eprintln!(
                "Logged in as {}. The session is stored in {}; `wxbridge run` will use it.",
                clean_name(&session.user().nick_name),
                file.path().display()
            );
            ExitCode::SUCCESS
        }
        Err(LoginError::QrExpired(n)) => failure(format!(
            "gave up after {n} QR codes expired without a scan. Run `wxbridge login` again when you have your phone at hand."
        )),
        Err(e) => failure(e),
    }
}

/// Resumes the stored session for a one-shot command.
async fn stored_session(config: &Config) -> Result<Session, ExitCode> {
    let file = SessionFile::in_dir(&config.state_dir);
    let stored = match file.load() {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(failure(
                "no stored session: log in first with `wxbridge login`",
            ))
        }
        Err(e) => {
            return Err(failure(format!(
                "cannot read {}: {e}",
                file.path().display()
            )))
        }
    };
    match login::resume(&client(config), &stored, None).await {
        Ok(s) => {
            if let Err(e) = file.save(&s.to_stored()) {
                tracing::warn!(cause = %e, "cannot update the stored session");
            }
            Ok(s)
        }
        Err(e) if e.is_session_expired() => Err(failure(format!(
            "the stored session has expired ({e}); log in again with `wxbridge login`"
        ))),
        Err(e) => Err(failure(format!("cannot resume the stored session: {e}"))),
    }
}

/// The state lock and the stored session resumed, for a one-shot command.
async fn locked_session(config: &Config) -> Result<(StateLock, Session), ExitCode> {
    let lock = take_state(config, WHILE_RUNNING)?;
    Ok((lock, stored_session(config).await?))
}

/// `logout`: webwxlogout, then forget the session.
pub async fn logout(config: Config) -> ExitCode {
    let _lock = match take_state(&config, WHILE_RUNNING) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let file = SessionFile::in_dir(&config.state_dir);
    let stored = match file.load() {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("No stored session; nothing to log out.");
            return ExitCode::SUCCESS;
        }
        Err(e) => return failure(format!("cannot read {}: {e}", file.path().display())),
    };
    let client = client(&config);
    let _ = client.restore_cookies(&stored.cookies);
    if let Err(e) = client.logout(&stored.credentials).await {
        tracing::warn!(cause = %e, "WeChat did not confirm the logout; forgetting the session anyway");
    }
    if let Err(e) = file.remove() {
        return failure(format!("cannot remove {}: {e}", file.path().display()));
    }
    eprintln!("Logged out; the stored session is gone.");
    ExitCode::SUCCESS
}

/// The contact keys of the session's contacts, for a one-shot command run under the state
/// lock: the account's key book (spool value `contact_keys`) bound to them by the rules `run`
/// binds each login with, and stored back when that changed it (a contact new since `run`
/// last bound then keeps the key shown here). `None`, with keys left out, when the account
/// has no spool or no book yet, or it cannot be read: `run` stores the book, this only uses
/// it.
async fn session_keys(config: &Config, session: &Session) -> Option<ContactKeys> {
    let path = config.state_dir.join(SPOOL_FILE);
    if !path.exists() {
        return None;
    }
    // Through the store, so a journal `run` left behind is replayed before the book is read.
    let store = match RedbSpool::open(&path, config.spool.max_events_per_sink)
        .and_then(|s| Store::spawn(s, crate::sinks::WINDOW as u64))
    {
        Ok(store) => store,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot open the spool; contact keys are left out");
            return None;
        }
    };
    let keys = bind_stored_keys(&store, session).await;
    store.close().await;
    keys
}

async fn bind_stored_keys(store: &Store, session: &Session) -> Option<ContactKeys> {
    let bytes = match store.value(SPOOL_VALUE).await {
        Ok(bytes) => bytes?,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot read the contact keys; they are left out");
            return None;
        }
    };
    let mut keys = match ContactKeys::from_bytes(&bytes) {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot read the contact keys; they are left out");
            return None;
        }
    };
    let outcome = keys.bind_login(
        session.book().iter(),
        time::OffsetDateTime::now_utc().unix_timestamp(),
    );
    if outcome.changed {
        if let Err(e) = store.put_value(SPOOL_VALUE, keys.to_bytes()).await {
            tracing::warn!(cause = %e, "cannot store the contact keys");
        }
    }
    Some(keys)
}

/// `contacts [--json]`, with each contact's key when the account has a key book.
pub async fn contacts(config: Config, json: bool) -> ExitCode {
    let (_lock, session) = match locked_session(&config).await {
        Ok(held) => held,
        Err(code) => return code,
    };
    let keys = session_keys(&config, &session).await;
    for mut c in session.book().listing() {
        let key = keys.as_ref().map(|k| {
            c["id"]
                .as_str()
                .and_then(|id| k.key_of(id))
                .map(str::to_owned)
        });
        if let Some(key) = &key {
            c["key"] = serde_json::json!(key);
        }
        if json {
            println!("{c}");
        } else {
            let kind = if c["group"] == true {
                "group"
            } else {
                "contact"
            };
            let remark = c["remark"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            let key = key.flatten().map(|k| format!("  {k}")).unwrap_or_default();
            println!(
                "{kind:<8} {}{remark}  {}{key}",
                c["name"].as_str().unwrap_or_default(),
                c["id"].as_str().unwrap_or_default()
            );
        }
    }
    ExitCode::SUCCESS
}

/// `send --to WHO TEXT`, to a recipient `send.allow` allows (as for commands on the bus).
pub async fn send(config: Config, to: String, text: String) -> ExitCode {
    let (_lock, session) = match locked_session(&config).await {
        Ok(held) => held,
        Err(code) => return code,
    };
    let recipient = {
        let book = session.book();
        let found = book
            .resolve_id(&to)
            .cloned()
            .map(Ok)
            .unwrap_or_else(|| book.resolve(&to).cloned());
        match found {
            Ok(c) => c,
            Err(e) => return failure(e),
        }
    };
    // A key entry needs the recipient's key, which only the account's key book gives.
    let keys = if config.send.allow.iter().any(|a| is_contact_key(a)) {
        session_keys(&config, &session).await
    } else {
        None
    };
    let key = keys.as_ref().and_then(|k| k.key_of(&recipient.user_name));
    if let Some(refused) = refusal(&config.send.allow, &recipient, key) {
        return failure(refused);
    }
    match session.send_text(&recipient.user_name, &text).await {
        Ok(msg_id) => {
            println!("{msg_id}");
            eprintln!("Sent to {}.", clean_name(&recipient.nick_name));
            ExitCode::SUCCESS
        }
        Err(e) => failure(e),
    }
}

/// `check-config`: the checks `run` makes before it starts anything ([`crate::app::prepare`],
/// after the loader's), then the effective config with secrets masked.
pub fn check_config(config: &Config, source: Option<&std::path::Path>) -> ExitCode {
    if let Err(e) = crate::app::prepare(config) {
        return refused(e);
    }
    match source {
        Some(p) => eprintln!("# configuration from {} is valid", p.display()),
        None => {
            eprintln!("# no config file: built-in defaults (and WXBRIDGE__ overrides) are valid")
        }
    }
    print!("{}", config.effective_yaml());
    ExitCode::SUCCESS
}
