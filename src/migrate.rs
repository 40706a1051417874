//! Moving a single-account state dir into its account's own directory, for a config that
//! went from `account: home` to `accounts: [{account: home}]` (README "Several accounts").
//!
//! With `account:` the session, spool and the rest live in `state_dir` itself; with
//! `accounts:` each account's live in `<state_dir>/<account>`. At start, when the state dir
//! still holds the old layout and the account it belongs to can be known, its files are
//! moved, so the session resumes without a new scan. It can be known when the state dir
//! records its account ([`OWNER_FILE`], written at every start since several accounts exist)
//! or when the config lists a single account. Otherwise nothing is moved and the log says
//! how to do it by hand: guessing could hand one account's session to another.
//!
//! The files go into `<state_dir>/.moving-<account>` first, and that directory is renamed to
//! `<state_dir>/<account>` last, so a crash half-way leaves no account dir that looks complete;
//! the next start finishes the move.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::lock::{LockError, StateLock};
use crate::wechat::session::{ensure_private_dir, write_private_atomically};

/// The file in a state dir that names the account whose state it holds.
pub const OWNER_FILE: &str = "account.json";

/// Files whose presence means a state dir holds an account's state.
const STATE_FILES: [&str; 2] = ["session.json", "spool.redb"];

/// What the single-account layout keeps in the state dir, in the order it is moved: the
/// owner file last, so a half-done move can still be told apart. The lock stays: it is held
/// while moving and removed after.
const LAYOUT: [&str; 9] = [
    "session.json",
    "spool.redb",
    "spool.journal",
    "limits.json",
    "media.key",
    "media-held",
    "media",
    "qr.png",
    OWNER_FILE,
];

/// The content of [`OWNER_FILE`].
#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    account: String,
}

/// Records in `state_dir` that it holds `account`'s state (when it does not say so already).
pub fn record_owner(state_dir: &Path, account: &str) -> io::Result<()> {
    if read_owner(state_dir).as_deref() == Some(account) {
        return Ok(());
    }
    let owner = Owner {
        account: account.to_owned(),
    };
    let bytes = serde_json::to_vec(&owner).map_err(io::Error::other)?;
    write_private_atomically(&state_dir.join(OWNER_FILE), &bytes)
}

/// The account `state_dir` says it holds, if it says.
fn read_owner(state_dir: &Path) -> Option<String> {
    let bytes = fs::read(state_dir.join(OWNER_FILE)).ok()?;
    serde_json::from_slice::<Owner>(&bytes)
        .ok()
        .map(|o| o.account)
}

/// Why the state could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A bridge of the old config still runs on the state dir.
    #[error(
        "{0}; it still runs with the single-account state that accounts[{1}] takes over: stop it first"
    )]
    Locked(LockError, usize),
    /// A file could not be moved.
    #[error("cannot move the single-account state in {} into {}: {cause}", from.display(), to.display())]
    Io {
        /// The old state dir.
        from: PathBuf,
        /// The account's dir.
        to: PathBuf,
        /// Why.
        cause: io::Error,
    },
}

/// A move that was made: the account and what was moved.
#[derive(Debug, PartialEq)]
pub struct Moved {
    /// The account whose dir now holds the state.
    pub account: String,
    /// The names moved from the old state dir.
    pub moved: Vec<String>,
}

/// Moves a single-account state in `config.state_dir` into its account's dir, when `config`
/// lists `accounts:` and the owner can be known (see the module doc); logs what it did, or
/// why it did not.
pub fn single_account_state(config: &Config) -> Result<Option<Moved>, MigrateError> {
    if !config.several_accounts() {
        return Ok(None);
    }
    let base = &config.state_dir;
    let views = config.accounts();
    // A move that a crash interrupted is finished first, whoever the owner.
    let resumed = views
        .iter()
        .position(|v| staging(base, &v.account).is_dir());
    let index = match resumed {
        Some(index) => index,
        None => {
            if !STATE_FILES.iter().any(|name| base.join(name).exists()) {
                return Ok(None);
            }
            match owner_of(base, &views) {
                Ok(index) => index,
                Err(why) => {
                    tracing::warn!(
                        state_dir = %base.display(),
                        "{why}; nothing was moved. To keep that session, move the files of \
                         {} into {} by hand while no wxbridge runs",
                        base.display(),
                        base.join("<account>").display()
                    );
                    return Ok(None);
                }
            }
        }
    };
    let view = &views[index];
    if resumed.is_none() && view.state_dir.exists() {
        tracing::warn!(
            account = %view.account,
            "{} holds a single-account state, but {} exists already; nothing was moved",
            base.display(),
            view.state_dir.display()
        );
        return Ok(None);
    }
    let io_error = |cause| MigrateError::Io {
        from: base.clone(),
        to: view.state_dir.clone(),
        cause,
    };
    // Refused when another user owns it, as every state dir is: its files are not ours to move.
    ensure_private_dir(base).map_err(io_error)?;
    let lock = StateLock::acquire(base).map_err(|e| MigrateError::Locked(e, index))?;
    let moved = move_layout(base, view).map_err(io_error)?;
    drop(lock);
    let _ = fs::remove_file(base.join("lock"));
    tracing::info!(
        account = %view.account,
        "moved the single-account state from {} into {}: {}",
        base.display(),
        view.state_dir.display(),
        moved.join(", ")
    );
    Ok(Some(Moved {
        account: view.account.clone(),
        moved,
    }))
}

/// Which of `views` the single-account state in `base` belongs to, or why that is not known.
fn owner_of(base: &Path, views: &[Config]) -> Result<usize, String> {
    match read_owner(base) {
        Some(owner) => views
            .iter()
            .position(|v| v.account == owner)
            .ok_or_else(|| {
                format!("the single-account state in the state dir is account {owner}'s, which `accounts` does not list")
            }),
        None if views.len() == 1 => Ok(0),
        None => Err(
            "the state dir holds a single-account state that does not record its account, and \
             `accounts` lists several"
                .to_owned(),
        ),
    }
}

/// `<state_dir>/.moving-<account>`: where the files gather before the rename.
fn staging(base: &Path, account: &str) -> PathBuf {
    base.join(format!(".moving-{account}"))
}

/// Moves the layout's files of `base` into `view`'s state dir, through [`staging`]. The
/// media store and the QR file move only when the account's config keeps them at their
/// default place in its dir; elsewhere they are the config's, not the layout's.
fn move_layout(base: &Path, view: &Config) -> io::Result<Vec<String>> {
    let target = &view.state_dir;
    let stage = staging(base, &view.account);
    ensure_private_dir(&stage)?;
    let mut moved = Vec::new();
    for name in LAYOUT {
        let keep_here = match name {
            "media" => view.media.dir_in(target) != target.join(name),
            "qr.png" => view.wechat.qr_png != target.join(name),
            _ => false,
        };
        let from = base.join(name);
        if keep_here || fs::symlink_metadata(&from).is_err() {
            continue;
        }
        fs::rename(&from, stage.join(name))?;
        moved.push(name.to_owned());
    }
    fs::rename(&stage, target)?;
    // The renames are durable once the directories that hold them are.
    for dir in [base, target.as_path()] {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A state dir in a temp dir, and a config listing `accounts` over it (with `extra` YAML).
    fn setup(accounts: &[&str], extra: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("state");
        let list: Vec<String> = accounts
            .iter()
            .map(|a| format!("  - account: {a}\n"))
            .collect();
        let yaml = format!(
            "state_dir: {}\naccounts:\n{}{extra}",
            base.display(),
            list.concat()
        );
        let config = crate::config::parse(&yaml, "test", &HashMap::new()).unwrap();
        (dir, config)
    }

    /// The old layout in `base`: a session, a spool, a media store with a file, and the owner
    /// when given.
    fn old_layout(base: &Path, owner: Option<&str>) {
        fs::create_dir_all(base.join("media/ab")).unwrap();
        fs::write(base.join("session.json"), "{}").unwrap();
        fs::write(base.join("spool.redb"), "spool").unwrap();
        fs::write(base.join("media/ab/abcd"), "jpeg").unwrap();
        fs::write(base.join("lock"), "").unwrap();
        if let Some(owner) = owner {
            record_owner(base, owner).unwrap();
        }
    }

    #[test]
    fn a_state_that_records_its_account_moves_into_that_accounts_dir() {
        let (_dir, config) = setup(&["home", "office"], "");
        let base = &config.state_dir;
        old_layout(base, Some("office"));
        let moved = single_account_state(&config).unwrap().expect("moved");
        assert_eq!(moved.account, "office");
        assert_eq!(
            moved.moved,
            ["session.json", "spool.redb", "media", OWNER_FILE]
        );
        let office = base.join("office");
        assert_eq!(
            fs::read_to_string(office.join("spool.redb")).unwrap(),
            "spool"
        );
        assert_eq!(
            fs::read_to_string(office.join("media/ab/abcd")).unwrap(),
            "jpeg"
        );
        assert_eq!(read_owner(&office).as_deref(), Some("office"));
        for gone in [
            "session.json",
            "spool.redb",
            "media",
            "lock",
            ".moving-office",
        ] {
            assert!(!base.join(gone).exists(), "{gone} is left in the old place");
        }
        assert!(!base.join("home").exists());
        assert_eq!(single_account_state(&config).unwrap(), None, "done once");
    }

    #[test]
    fn with_one_account_listed_a_state_without_its_account_is_that_ones() {
        let (_dir, config) = setup(&["home"], "");
        old_layout(&config.state_dir, None);
        let moved = single_account_state(&config).unwrap().expect("moved");
        assert_eq!(moved.account, "home");
        assert!(config.state_dir.join("home/session.json").is_file());
    }

    #[test]
    fn a_state_whose_account_cannot_be_known_stays_where_it_is() {
        let (_dir, config) = setup(&["home", "office"], "");
        old_layout(&config.state_dir, None);
        assert_eq!(single_account_state(&config).unwrap(), None);
        assert!(config.state_dir.join("session.json").is_file());

        let (_dir, config) = setup(&["home"], "");
        old_layout(&config.state_dir, Some("family"));
        assert_eq!(
            single_account_state(&config).unwrap(),
            None,
            "another account's"
        );
        assert!(config.state_dir.join("session.json").is_file());
    }

    #[test]
    fn an_account_dir_that_exists_already_is_not_overwritten() {
        let (_dir, config) = setup(&["home"], "");
        old_layout(&config.state_dir, Some("home"));
        fs::create_dir(config.state_dir.join("home")).unwrap();
        assert_eq!(single_account_state(&config).unwrap(), None);
        assert!(config.state_dir.join("session.json").is_file());
        assert!(!config.state_dir.join("home/session.json").exists());
    }

    #[test]
    fn a_media_store_the_config_keeps_elsewhere_is_not_moved() {
        let (_dir, config) = setup(&["home"], "");
        let base = config.state_dir.clone();
        let yaml = format!(
            "state_dir: {}\naccounts:\n  - account: home\n    media: {{dir: {}}}\n",
            base.display(),
            base.join("media").display()
        );
        let config = crate::config::parse(&yaml, "test", &HashMap::new()).unwrap();
        old_layout(&base, None);
        let moved = single_account_state(&config).unwrap().expect("moved");
        assert!(!moved.moved.contains(&"media".to_owned()));
        assert!(base.join("media/ab/abcd").is_file());
    }

    #[test]
    fn a_move_cut_short_is_finished_at_the_next_start() {
        let (_dir, config) = setup(&["home", "office"], "");
        let base = &config.state_dir;
        old_layout(base, None);
        // As a crash after the session moved would leave it.
        let stage = staging(base, "office");
        fs::create_dir_all(&stage).unwrap();
        fs::rename(base.join("session.json"), stage.join("session.json")).unwrap();
        let moved = single_account_state(&config).unwrap().expect("finished");
        assert_eq!(moved.account, "office");
        assert!(base.join("office/session.json").is_file());
        assert!(base.join("office/spool.redb").is_file());
        assert!(!stage.exists());
    }

    #[test]
    fn a_bridge_still_running_on_the_old_state_stops_the_move() {
        let (_dir, config) = setup(&["home"], "");
        old_layout(&config.state_dir, Some("home"));
        let _held = StateLock::acquire(&config.state_dir).unwrap();
        let err = single_account_state(&config).unwrap_err().to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        assert!(err.contains("stop it first"), "{err}");
        assert!(config.state_dir.join("session.json").is_file());
    }

    #[test]
    fn the_single_account_form_moves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!("account: home\nstate_dir: {}\n", dir.path().display());
        let config = crate::config::parse(&yaml, "test", &HashMap::new()).unwrap();
        old_layout(dir.path(), Some("home"));
        assert_eq!(single_account_state(&config).unwrap(), None);
        assert!(dir.path().join("session.json").is_file());
    }
}
