//! Reading a command's `{"path": …}` safely: only regular files inside the directories
//! `media.paths` lists, judged after both are canonicalized, so neither `..` nor a symbolic
//! link (one inside an allowed directory pointing out of it included) can reach further.
//! Nothing is opened before the path is judged; the opened file is checked again to be the
//! very regular file that was judged, so a file swapped in between is refused, and a FIFO or a
//! device is never opened for reading (which could block or never end).
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Why a path is not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// Not inside `media.paths`, not there, or not a regular file (`media_forbidden`). One
    /// error for all three, so a command cannot probe what exists outside.
    #[error("{0}")]
    Forbidden(String),
    /// Over `media.fetch.max_bytes` (`media_too_large`).
    #[error("the file is larger than media.fetch.max_bytes ({limit} bytes)")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
}

/// Opens `path` for reading when it is a regular file inside one of `allowed` and at most
/// `max_bytes` long; answers the open file and its size.
pub fn open_allowed(
    path: &Path,
    allowed: &[PathBuf],
    max_bytes: u64,
) -> Result<(File, u64), PathError> {
    let refused = || {
        PathError::Forbidden(format!(
            "{} is not a readable file inside media.paths",
            path.display()
        ))
    };
    if allowed.is_empty() {
        return Err(PathError::Forbidden(
            "media.paths is empty: no path may be sent".into(),
        ));
    }
    if !path.is_absolute() {
        return Err(PathError::Forbidden(format!(
            "{} is not an absolute path",
            path.display()
        )));
    }
    let real = std::fs::canonicalize(path).map_err(|_| refused())?;
    let inside = allowed
        .iter()
        .filter_map(|dir| std::fs::canonicalize(dir).ok())
        .any(|dir| real.starts_with(&dir) && real != dir);
    if !inside {
        return Err(refused());
    }
    // The canonical path has no links left; its final component is checked unfollowed.
    let judged = std::fs::symlink_metadata(&real).map_err(|_| refused())?;
    if !judged.is_file() {
        return Err(refused());
    }
    if judged.len() > max_bytes {
        return Err(PathError::TooLarge { limit: max_bytes });
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
    );
    let file = options.open(&real).map_err(|_| refused())?;
    let opened = file.metadata().map_err(|_| refused())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if (opened.dev(), opened.ino()) != (judged.dev(), judged.ino()) {
            return Err(refused());
        }
    }
    if !opened.is_file() {
        return Err(refused());
    }
    Ok((file, opened.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dirs {
        _root: tempfile::TempDir,
        allowed: PathBuf,
        outside: PathBuf,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(allowed.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(allowed.join("sub/snap.jpg"), b"inside").unwrap();
        std::fs::write(outside.join("secret.txt"), b"outside").unwrap();
        Dirs {
            _root: root,
            allowed,
            outside,
        }
    }

    fn forbidden(r: Result<(File, u64), PathError>) -> bool {
        matches!(r, Err(PathError::Forbidden(_)))
    }

    #[test]
    fn a_file_inside_an_allowed_dir_is_opened() {
        let d = dirs();
        let (_, size) = open_allowed(
            &d.allowed.join("sub/snap.jpg"),
            std::slice::from_ref(&d.allowed),
            100,
        )
        .unwrap();
        assert_eq!(size, 6);
        assert_eq!(
            open_allowed(
                &d.allowed.join("sub/snap.jpg"),
                std::slice::from_ref(&d.allowed),
                5
            )
            .unwrap_err(),
            PathError::TooLarge { limit: 5 }
        );
    }

    #[test]
    fn paths_out_of_the_allowed_dirs_are_refused() {
        let d = dirs();
        let allowed = [d.allowed.clone()];
        let secret = d.outside.join("secret.txt");
        assert!(forbidden(open_allowed(&secret, &allowed, 100)));
        assert!(forbidden(open_allowed(
            &d.allowed.join("../outside/secret.txt"),
            &allowed,
            100
        )));
        assert!(forbidden(open_allowed(
            Path::new("allowed/sub/snap.jpg"),
            &allowed,
            100
        )));
        assert!(
            forbidden(open_allowed(&d.allowed.join("sub"), &allowed, 100)),
            "a directory"
        );
        assert!(forbidden(open_allowed(&d.allowed, &allowed, 100)));
        assert!(forbidden(open_allowed(
            &d.allowed.join("missing.jpg"),
            &allowed,
            100
        )));
        assert!(forbidden(open_allowed(
            &d.allowed.join("sub/snap.jpg"),
            &[],
            100
        )));
    }

    #[cfg(unix)]
    #[test]
    fn links_cannot_lead_out_and_fifos_are_never_opened() {
        let d = dirs();
        let allowed = [d.allowed.clone()];
        let link = d.allowed.join("escape.txt");
        std::os::unix::fs::symlink(d.outside.join("secret.txt"), &link).unwrap();
        assert!(forbidden(open_allowed(&link, &allowed, 100)));
        let dir_link = d.allowed.join("out");
        std::os::unix::fs::symlink(&d.outside, &dir_link).unwrap();
        assert!(forbidden(open_allowed(
            &dir_link.join("secret.txt"),
            &allowed,
            100
        )));
        // A link that stays inside is fine: it is judged by where it leads.
        let inner = d.allowed.join("latest.jpg");
        std::os::unix::fs::symlink(d.allowed.join("sub/snap.jpg"), &inner).unwrap();
        assert_eq!(open_allowed(&inner, &allowed, 100).unwrap().1, 6);
        let fifo = d.allowed.join("pipe");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(forbidden(open_allowed(&fifo, &allowed, 100)));
    }
}
