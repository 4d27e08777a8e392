//! The server's state directory: where the handle secret lives, so that handles survive
//! restarts (see [`crate::handle`]).
//!
//! The secret is the file `handle-secret` in the directory: a first line naming the format,
//! a second line of 64 hex digits (32 bytes), mode 0600. The first server to start creates
//! it atomically: the bytes go to a temporary file of its own, written and synced, which is
//! then hard-linked to the final name, and a link never replaces an existing file. When
//! several servers start at once on one directory, one link wins and every starter then
//! reads the winner's file, so they all agree on one secret.
use crate::handle::HandleSecret;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Name of the secret's file in the state directory.
pub const SECRET_FILE: &str = "handle-secret";
const HEADER: &str = "rnfs handle secret v1";

/// Why the state directory could not give a secret. Each names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory or the file cannot be created or written.
    #[error("cannot create the handle secret in {path}: {error} (choose a writable directory with --state-dir)")]
    Create {
        /// The path that failed.
        path: PathBuf,
        /// Why (in the message, so not a `source`).
        error: std::io::Error,
    },
    /// The file exists but cannot be read.
    #[error("cannot read the handle secret {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not a `source`).
        error: std::io::Error,
    },
    /// The file exists but is not a secret of this format.
    #[error("{path} is not an rnfs handle secret (expected a line \"{HEADER}\" and 64 hex digits); move it away to make a new one (handles given out so far will stop working)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// The default state directory: `/var/lib/rnfs` for root, else `$XDG_STATE_HOME/rnfs`, or
/// `$HOME/.local/state/rnfs`; `None` when neither variable is set for a non-root user.
pub fn default_dir(
    is_root: bool,
    xdg_state_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    if is_root {
        return Some(PathBuf::from("/var/lib/rnfs"));
    }
    // The XDG base directory spec: a relative value is invalid and ignored.
    if let Some(x) = xdg_state_home.filter(|x| Path::new(x).is_absolute()) {
        return Some(Path::new(&x).join("rnfs"));
    }
    let home = home.filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".local/state/rnfs"))
}

/// The secret kept in `dir`, made (and the directory too, mode 0700) on first use.
pub fn load_or_create(dir: &Path) -> Result<HandleSecret, StateError> {
    let path = dir.join(SECRET_FILE);
    match read(&path) {
        Ok(Some(s)) => return Ok(s),
        Ok(None) => {}
        // Not a directory there: making it says why, naming it.
        Err(StateError::Read { .. }) if !dir.is_dir() => {}
        Err(e) => return Err(e),
    }
    let create = |p: &Path| {
        let p = p.to_path_buf();
        move |error| StateError::Create { path: p, error }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(create(dir))?;
    let secret = HandleSecret::random().map_err(create(&path))?;
    let mut text = String::with_capacity(HEADER.len() + 66);
    text.push_str(HEADER);
    text.push('\n');
    for b in secret.bytes() {
        text.push_str(&format!("{b:02x}"));
    }
    text.push('\n');
    // A temporary name no other starter uses: pid and a random suffix (of its own: the
    // name must tell nothing of the secret).
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| StateError::Create {
        path: dir.to_path_buf(),
        error: std::io::Error::other(e),
    })?;
    let tmp = dir.join(format!(
        ".{SECRET_FILE}.{}.{:016x}",
        std::process::id(),
        u64::from_ne_bytes(suffix)
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(StateError::Create { path: tmp, error });
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The new name is durable once the directory is synced.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(secret)
        }
        // Another starter won: use its secret.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read(&path)? {
            Some(s) => Ok(s),
            None => Err(StateError::Malformed { path }),
        },
        Err(error) => Err(StateError::Create { path, error }),
    }
}

/// The secret in `path`, `None` if there is no such file.
fn read(path: &Path) -> Result<Option<HandleSecret>, StateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let malformed = || StateError::Malformed {
        path: path.to_path_buf(),
    };
    if text.len() > 4096 {
        return Err(malformed());
    }
    let text = std::str::from_utf8(&text).map_err(|_| malformed())?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(malformed());
    }
    let hex = lines.next().ok_or_else(malformed)?.trim();
    if hex.len() != 2 * HandleSecret::LEN || lines.any(|l| !l.trim().is_empty()) {
        return Err(malformed());
    }
    let mut b = [0u8; HandleSecret::LEN];
    for (i, out) in b.iter_mut().enumerate() {
        *out = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(malformed)?, 16)
            .map_err(|_| malformed())?;
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the handle secret is readable by others: whoever reads it can forge file handles (chmod 600 it)");
        }
    }
    Ok(Some(HandleSecret::from_bytes(b)))
}

/// The NFSv4 stable client records' directory inside the state directory.
pub const CLIENTS_DIR: &str = "v4-clients";
/// Largest record file read back (a record is at most about 2 KiB, see
/// [`crate::v4::state::sessions::records`]).
const MAX_RECORD_FILE: u64 = 4096;

/// The NFSv4 clients that may reclaim after a restart (RFC 8881 8.4.2.1), one file per
/// client in `<state dir>/v4-clients`, named by a hash of the record, holding the bytes of
/// [`crate::v4::state::sessions::records::StableRecord::encode`]. A record is written to a
/// temporary file, synced, and renamed into place, so a crash leaves the old set or the new.
#[derive(Debug)]
pub struct ClientRecords {
    dir: PathBuf,
}

impl ClientRecords {
    /// The records under state directory `state_dir` (the directory is made, mode 0700).
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join(CLIENTS_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Self { dir })
    }

    /// The records kept, at most `max` of them; files that are not records (damaged, too
    /// large, another version) are logged and skipped.
    pub fn load(
        &self,
        max: usize,
    ) -> std::io::Result<Vec<crate::v4::state::sessions::records::StableRecord>> {
        use crate::v4::state::sessions::records::StableRecord;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if out.len() >= max {
                tracing::warn!(dir = %self.dir.display(), max, "more client records than clients allowed; the rest are ignored");
                break;
            }
            if path.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            let record = std::fs::File::open(&path).and_then(|f| {
                use std::io::Read;
                let mut b = Vec::new();
                f.take(MAX_RECORD_FILE + 1).read_to_end(&mut b)?;
                Ok(b)
            });
            match record.map(|b| StableRecord::decode(&b)) {
                Ok(Ok(r)) => out.push(r),
                Ok(Err(e)) => {
                    tracing::warn!(path = %path.display(), error = %e, "not a client record; ignored")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a client record; ignored")
                }
            }
        }
        Ok(out)
    }

    /// Applies the changes the client table asked for, in order.
    pub fn apply(&self, changes: &[crate::v4::state::sessions::api::RecordChange]) {
        use crate::v4::state::sessions::api::RecordChange;
        for c in changes {
            let r = match c {
                RecordChange::Insert(r) => self.write(&r.encode()),
                RecordChange::Remove(r) => match std::fs::remove_file(self.path_of(&r.encode())) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    r => r,
                },
            };
            if let Err(e) = r {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot update a client record");
            }
        }
    }

    fn path_of(&self, bytes: &[u8]) -> PathBuf {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(bytes);
        let name: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(name)
    }

    fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path_of(bytes);
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_secret_is_made_once_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        let s = load_or_create(&dir).unwrap();
        assert_eq!(load_or_create(&dir).unwrap(), s);
        let meta = std::fs::metadata(dir.join(SECRET_FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let other = load_or_create(&d.path().join("c")).unwrap();
        assert_ne!(other, s);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn starters_racing_on_one_directory_agree() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        let all: Vec<HandleSecret> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..16)
                .map(|_| sc.spawn(|| load_or_create(&dir).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(all.iter().all(|s| *s == all[0]));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(SECRET_FILE);
        for bad in [
            "",
            "rnfs handle secret v1\n",
            "rnfs handle secret v1\nabcd\n",
            &format!("rnfs handle secret v1\n{}\n", "zz".repeat(32)),
            &format!("something else\n{}\n", "00".repeat(32)),
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = load_or_create(d.path()).unwrap_err();
            assert!(matches!(e, StateError::Malformed { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains(&path.display().to_string()));
        }
    }

    #[test]
    fn an_unwritable_directory_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        // Below a regular file: not creatable, even by root.
        std::fs::write(d.path().join("file"), b"x").unwrap();
        let dir = d.path().join("file/state");
        let e = load_or_create(&dir).unwrap_err();
        assert!(matches!(e, StateError::Create { .. }), "{e}");
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
    }

    #[test]
    fn default_directories() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_dir(true, os("/x"), os("/home/u")),
            Some(PathBuf::from("/var/lib/rnfs"))
        );
        assert_eq!(
            default_dir(false, os("/x"), os("/home/u")),
            Some(PathBuf::from("/x/rnfs"))
        );
        assert_eq!(
            default_dir(false, os("rel"), os("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/rnfs"))
        );
        assert_eq!(default_dir(false, None, None), None);
    }

    #[test]
    fn client_records_are_kept_removed_and_damaged_ones_skipped() {
        use crate::v4::state::sessions::api::RecordChange;
        use crate::v4::state::sessions::records::StableRecord;
        let d = tempfile::tempdir().unwrap();
        let rec = |o: &[u8]| StableRecord {
            owner: o.to_vec(),
            principal: vec![0, 0, 0, 0],
        };
        let store = ClientRecords::open(d.path()).unwrap();
        store.apply(&[
            RecordChange::Insert(rec(b"a")),
            RecordChange::Insert(rec(b"b")),
            RecordChange::Insert(rec(b"c")),
            RecordChange::Remove(rec(b"b")),
            RecordChange::Remove(rec(b"never there")),
        ]);
        std::fs::write(d.path().join(CLIENTS_DIR).join("junk"), b"\x09nonsense").unwrap();
        let again = ClientRecords::open(d.path()).unwrap();
        let mut got = again.load(100).unwrap();
        got.sort();
        assert_eq!(got, vec![rec(b"a"), rec(b"c")]);
        assert_eq!(again.load(1).unwrap().len(), 1, "at most the bound");
    }
}
