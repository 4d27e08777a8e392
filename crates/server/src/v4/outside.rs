//! Changes made beside NFS to delegated files (issue 15; pynfs DELEG16-20): a file of a
//! local export can be changed on the host while a client holds a delegation on it (a
//! `rm`, `mv`, `ln` or `chmod` in the exported directory, a program writing it), and the
//! holder must then be recalled as for an NFS caller's change, or it goes on trusting its
//! cached attributes, name and data.
//!
//! knfsd does this with kernel leases, which the kernel breaks before the change. A user
//! space server has `F_SETLEASE`, but that lease breaks only on a conflicting open or a
//! truncate, not on unlink, rename, link or chmod; so rnfs watches each delegated file
//! with inotify instead, for as long as a delegation is held on it:
//! - `IN_ATTRIB` (mode, owner, times, and the link count: unlink, link, a rename over it),
//!   `IN_MODIFY` (written), `IN_MOVE_SELF` (renamed), `IN_DELETE_SELF` (gone);
//! - each report goes to [`V4State::changed_outside`], which decides with the I/O-free
//!   rule D7 of [`crate::v4::state::delegations`]: recalled as for an NFSv3 caller, unless
//!   the server itself changed the file just before (its own SETATTR, WRITE, ...: every
//!   change through NFS raises the same reports);
//! - a watch is added when a delegation is granted (from the backend's descriptor of the
//!   file, [`rnfs_vfs::Backend::watch_fd`]: backends nothing else can change have none) and
//!   removed by the laundromat once no delegation is held on the file. Watches are bounded
//!   by twice the delegations' total bound ([`WatchTable`]: those held, and those returned
//!   since the laundromat's last pass); a file not watched (at the bound, or
//!   past the kernel's `fs.inotify.max_user_watches`) is counted, its delegation still
//!   granted (as before this watch existed).
//!
//! Unlike a lease, a report comes after the change: the change is not held until the
//! delegation is returned, the recall merely follows it (within milliseconds). A change
//! made between the grant and the watch's creation (microseconds) is not seen.
//!
//! The decisions ([`WatchTable`], and D7 itself) are free of I/O; [`Watcher`] is the thin
//! inotify part: one descriptor, one thread reading it (never the async executor's).
use crate::v4::service::V4State;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use parking_lot::Mutex;
use rnfs_vfs::FileKey;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// What the watches hold and did, for `rnfs stats` and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchStats {
    /// Delegated files watched now.
    pub watched: usize,
    /// Watches added since start.
    pub added: u64,
    /// Delegated files left unwatched (at the bound, or the kernel refused).
    pub unwatched: u64,
    /// Reports of a change to a watched file.
    pub reports: u64,
    /// Times the kernel's event queue overflowed (every watched file then counts as
    /// changed).
    pub overflows: u64,
}

/// Which watch names which delegated files (I/O-free; `W` is the watch descriptor). One
/// watch per inode: two keys of one inode (two exports of one directory) share it. At most
/// `max` files are watched.
#[derive(Debug)]
pub struct WatchTable<W> {
    max: usize,
    by_wd: HashMap<W, Vec<FileKey>>,
    by_file: HashMap<FileKey, W>,
    stats: WatchStats,
}

impl<W: Copy + Eq + Hash> WatchTable<W> {
    /// No watches; at most `max` files watched.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            by_wd: HashMap::new(),
            by_file: HashMap::new(),
            stats: WatchStats::default(),
        }
    }

    /// Whether a watch for `file` is to be added: it has none, and there is room (a file
    /// with none and no room is counted unwatched).
    pub fn wants(&mut self, file: &FileKey) -> bool {
        if self.by_file.contains_key(file) {
            return false;
        }
        if self.by_file.len() >= self.max {
            self.stats.unwatched += 1;
            return false;
        }
        true
    }

    /// `file` is watched by `wd` now (a second add of one file is ignored).
    pub fn add(&mut self, file: FileKey, wd: W) {
        if self.by_file.contains_key(&file) {
            return;
        }
        if self.by_file.len() >= self.max {
            self.stats.unwatched += 1;
            return;
        }
        self.by_wd.entry(wd).or_default().push(file.clone());
        self.by_file.insert(file, wd);
        self.stats.added += 1;
    }

    /// A file could not be watched (the kernel refused).
    pub fn refused(&mut self) {
        self.stats.unwatched += 1;
    }

    /// The files that watch `wd` reports a change of.
    pub fn report(&mut self, wd: W) -> Vec<FileKey> {
        let files = self.by_wd.get(&wd).cloned().unwrap_or_default();
        if !files.is_empty() {
            self.stats.reports += 1;
        }
        files
    }

    /// The event queue overflowed: reports were lost, so every watched file may have
    /// changed.
    pub fn overflow(&mut self) -> Vec<FileKey> {
        self.stats.overflows += 1;
        self.by_file.keys().cloned().collect()
    }

    /// Watch `wd` is gone (the kernel's `IN_IGNORED`: the file is gone, or the watch was
    /// removed).
    pub fn gone(&mut self, wd: W) {
        for f in self.by_wd.remove(&wd).unwrap_or_default() {
            self.by_file.remove(&f);
        }
    }

    /// Forgets the files for which `held` says no delegation is held any more; returns the
    /// watches left with no file, to remove.
    pub fn prune(&mut self, held: impl Fn(&FileKey) -> bool) -> Vec<W> {
        let mut unused = Vec::new();
        let by_file = &mut self.by_file;
        self.by_wd.retain(|wd, files| {
            files.retain(|f| {
                let keep = held(f);
                if !keep {
                    by_file.remove(f);
                }
                keep
            });
            if files.is_empty() {
                unused.push(*wd);
            }
            !files.is_empty()
        });
        unused
    }

    /// The counters, and the files watched now.
    pub fn stats(&self) -> WatchStats {
        WatchStats {
            watched: self.by_file.len(),
            ..self.stats
        }
    }
}

/// The changes that are reported: see the module doc.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_DELETE_SELF
}

/// The inotify watches of delegated files, and the thread that reads their reports. See
/// the module doc.
pub(crate) struct Watcher {
    inotify: Inotify,
    table: Mutex<WatchTable<WatchDescriptor>>,
    /// The kernel's bound was met once (logged once).
    warned: AtomicBool,
}

impl Watcher {
    /// A watcher of at most `max` files whose reports go to `state`, with its thread;
    /// `None` when inotify is not available (logged: changes beside NFS then go unseen,
    /// as before).
    pub(crate) fn start(state: Weak<V4State>, max: usize) -> Option<Arc<Self>> {
        let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %e, "no inotify: changes made beside NFS to delegated files will not recall them");
                return None;
            }
        };
        let w = Arc::new(Self {
            inotify,
            table: Mutex::new(WatchTable::new(max)),
            warned: AtomicBool::new(false),
        });
        let me = w.clone();
        let spawned = std::thread::Builder::new()
            .name("rnfs-outside".into())
            .spawn(move || me.run(&state));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread for inotify: changes made beside NFS to delegated files will not recall them");
            return None;
        }
        Some(w)
    }

    /// Watches `file` (a delegation was just granted on it) through the descriptor `open`
    /// gives (the backend's; called only when a watch is to be added).
    pub(crate) fn watch(&self, file: &FileKey, open: &mut dyn FnMut() -> Option<OwnedFd>) {
        if !self.table.lock().wants(file) {
            return;
        }
        // The backend opens the file: not under the lock.
        let Some(fd) = open() else {
            return;
        };
        // The watch is of the inode the descriptor names (its /proc link is followed).
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        match self.inotify.add_watch(path.as_str(), mask()) {
            Ok(wd) => self.table.lock().add(file.clone(), wd),
            Err(e) => {
                self.table.lock().refused();
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "a delegated file is not watched for changes made beside NFS (see fs.inotify.max_user_watches); logged once");
                }
            }
        }
    }

    /// Removes the watches of files no delegation is held on any more (the laundromat).
    pub(crate) fn prune(&self, held: impl Fn(&FileKey) -> bool) {
        let unused = self.table.lock().prune(held);
        for wd in unused {
            // EINVAL: the kernel removed it already (the file is gone).
            let _ = self.inotify.rm_watch(wd);
        }
    }

    /// The watches' counters.
    pub(crate) fn stats(&self) -> WatchStats {
        self.table.lock().stats()
    }

    /// The thread: reads reports and hands each changed file to the state, until the state
    /// is gone (looked at twice a second).
    fn run(&self, state: &Weak<V4State>) {
        loop {
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(500u16));
            let Some(state) = state.upgrade() else {
                return;
            };
            let events = match self.inotify.read_events() {
                Ok(e) => e,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "reading inotify reports failed");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    continue;
                }
            };
            let mut changed = HashSet::new();
            {
                let mut t = self.table.lock();
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        changed.extend(t.overflow());
                        continue;
                    }
                    if ev.mask.intersects(mask()) {
                        changed.extend(t.report(ev.wd));
                    }
                    if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                        t.gone(ev.wd);
                    }
                }
            }
            for f in changed {
                state.changed_outside(&f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u8) -> FileKey {
        FileKey(vec![n])
    }

    #[test]
    fn watches_are_bounded_and_shared_by_keys_of_one_inode() {
        let mut t = WatchTable::new(2);
        assert!(t.wants(&file(1)));
        t.add(file(1), 7);
        assert!(!t.wants(&file(1)), "watched already");
        // A second key of the same inode: the kernel gives the same watch.
        assert!(t.wants(&file(2)));
        t.add(file(2), 7);
        assert!(!t.wants(&file(3)), "at the bound");
        t.add(file(3), 8);
        let s = t.stats();
        assert_eq!((s.watched, s.added, s.unwatched), (2, 2, 2));
        let mut r = t.report(7);
        r.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(r, vec![file(1), file(2)]);
        assert!(t.report(9).is_empty(), "an unknown watch reports nothing");
        assert_eq!(t.stats().reports, 1);
    }

    #[test]
    fn prune_and_gone_forget_files_and_free_room() {
        let mut t = WatchTable::new(3);
        t.add(file(1), 1);
        t.add(file(2), 1);
        t.add(file(3), 2);
        // File 1's delegation is gone: watch 1 stays for file 2.
        assert!(t.prune(|f| *f != file(1)).is_empty());
        assert_eq!(t.stats().watched, 2);
        // Then file 2's: watch 1 is to be removed.
        assert_eq!(t.prune(|f| *f == file(3)), vec![1]);
        assert_eq!(t.report(1), Vec::<FileKey>::new());
        // The kernel drops watch 2 (file removed).
        t.gone(2);
        assert_eq!(t.stats().watched, 0);
        assert!(t.wants(&file(3)));
        t.add(file(4), 3);
        assert_eq!(t.overflow(), vec![file(4)]);
        assert_eq!(t.stats().overflows, 1);
    }
}
