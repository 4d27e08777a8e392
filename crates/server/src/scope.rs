//! Who is calling, and what they may do where: the caller's [`Req`], the [`Scope`] of an
//! export it is admitted to (mapped identity, rights), and the first step of every call
//! that names a file: from a wire handle to an export and a backend key the backend can
//! place ([`NfsServer::scope`]). Refusals are neutral ([`VfsError`]); each protocol
//! version maps them to its statuses.
use crate::{exports, handle, Export, NfsServer};
use rnfs_rpc::message::Auth;
use rnfs_rpc::transport::ConnInfo;
use rnfs_vfs::{Backend, Ctx, VfsError};
use std::cell::Cell;
use std::sync::Arc;

/// Who is calling, and on which connection.
#[derive(Debug, Clone, Copy)]
pub struct Req<'a> {
    /// The connection.
    pub conn: &'a ConnInfo,
    /// The caller's credentials as sent.
    pub auth: &'a Auth,
    /// Set when the call runs on the connection's task ([`rnfs_rpc::transport::Service::try_call`]): a handle
    /// whose key needs a search sets the cell, and the call is run again on the blocking
    /// pool, where the search may run ([`crate::search`]).
    pub defer: Option<&'a Cell<bool>>,
}

impl Req<'_> {
    /// Whether the call was given up here, to run again on the pool.
    pub(crate) fn deferred(&self) -> bool {
        self.defer.is_some_and(Cell::get)
    }
}

/// Why a client may not use an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No rule matches its address.
    NotListed,
    /// The export is `secure` and the source port is 1024 or above.
    InsecurePort,
}

/// The export a call works in, with the caller's mapped identity and rights.
pub(crate) struct Scope {
    pub(crate) export: Arc<Export>,
    pub(crate) ctx: Ctx,
    pub(crate) rw: bool,
}

impl Scope {
    /// The export's backend.
    pub(crate) fn fs(&self) -> &dyn Backend {
        &*self.export.fs
    }

    /// The attributes of `key`, if the backend gives them (for replies that carry
    /// attributes when they can).
    pub(crate) fn attr_of(&self, key: &rnfs_vfs::FileKey) -> Option<rnfs_vfs::Attr> {
        self.fs().getattr(&self.ctx, key).ok()
    }

    /// Whether the caller may change things here: [`VfsError::Rofs`] if not (a read-only
    /// server, export, rule or backend).
    pub(crate) fn writable(&self) -> Result<(), VfsError> {
        if !self.rw {
            return Err(VfsError::Rofs);
        }
        Ok(())
    }

    /// Whether `key` is the export's root (whose `..` is itself: seed entry 14).
    pub(crate) fn is_root(&self, key: &rnfs_vfs::FileKey) -> bool {
        *key == self.export.fs.root()
    }
}

impl NfsServer {
    /// Admits a caller to an export, or says why not.
    pub(crate) fn admit(&self, export: &Arc<Export>, req: &Req<'_>) -> Result<Scope, Denied> {
        let o = export
            .rule_for(req.conn.peer.ip())
            .ok_or(Denied::NotListed)?;
        if o.secure && req.conn.peer.port() >= 1024 {
            return Err(Denied::InsecurePort);
        }
        Ok(Scope {
            export: export.clone(),
            ctx: Ctx::new(exports::squash_creds(req.auth, o)),
            rw: o.rw && !self.cfg.read_only && !export.fs.read_only(),
        })
    }

    /// Finds the export of a handle and admits the caller: the first step of every NFS call.
    pub(crate) fn scope(
        &self,
        req: &Req<'_>,
        fh: &[u8],
    ) -> Result<(Scope, rnfs_vfs::FileKey), VfsError> {
        let id = handle::export_id(fh).inspect_err(|_| self.stats.handle_mac_failure())?;
        let table = self.exports();
        let e = table.by_id(id);
        // The tag first, before anything looks at the key: with the export's key, or for
        // an export not (or no longer) served, with the key it would have.
        let key = match e {
            Some(e) => handle::verify(&e.key, fh),
            None => handle::verify(&handle::HandleKey::derive(&self.cfg.handle_secret, id), fh),
        }
        .inspect_err(|_| self.stats.handle_mac_failure())?;
        let Some(e) = e else {
            return Err(if table.retired.contains(&id) {
                VfsError::Acces
            } else {
                VfsError::Stale
            });
        };
        let scope = match self.admit(e, req) {
            Ok(s) => s,
            Err(Denied::NotListed) => return Err(VfsError::Acces),
            Err(Denied::InsecurePort) => {
                tracing::info!(peer = %req.conn.peer, "request from an unprivileged port refused (export is secure)");
                return Err(VfsError::Perm);
            }
        };
        self.place(req, &scope, &key)?;
        Ok((scope, key))
    }

    /// A second handle of the same call (RENAME, LINK): it must be in the same export.
    pub(crate) fn key_in(
        &self,
        req: &Req<'_>,
        x: &Scope,
        fh: &[u8],
    ) -> Result<rnfs_vfs::FileKey, VfsError> {
        let id = handle::export_id(fh).inspect_err(|_| self.stats.handle_mac_failure())?;
        if id != x.export.id {
            return Err(VfsError::Xdev);
        }
        let key =
            handle::verify(&x.export.key, fh).inspect_err(|_| self.stats.handle_mac_failure())?;
        self.place(req, x, &key)?;
        Ok(key)
    }

    /// Makes sure the backend can place `key` before the call uses it: if it needs a
    /// search, defers a call tried on the connection's task to the pool, and runs the
    /// search there within the bounds of [`crate::search`].
    /// Beyond a cap of searches the call is answered [`VfsError::Jukebox`]: the condition
    /// passes and the client should retry later (see [`crate::search`]).
    fn place(&self, req: &Req<'_>, x: &Scope, key: &rnfs_vfs::FileKey) -> Result<(), VfsError> {
        self.locate_key(req, &x.export, key)
    }

    /// [`NfsServer::place`] for a key of `export` (NFSv4's PUTFH, which admits the caller
    /// itself).
    pub(crate) fn locate_key(
        &self,
        req: &Req<'_>,
        export: &Export,
        key: &rnfs_vfs::FileKey,
    ) -> Result<(), VfsError> {
        use rnfs_vfs::Searched;
        let x = export;
        if !x.fs.needs_search(key)? {
            return Ok(());
        }
        if let Some(d) = req.defer {
            d.set(true);
            return Err(VfsError::Jukebox); // never sent: the call runs again
        }
        let cfg = &self.cfg.search;
        let Some(_permit) = self.searches.admit(req.conn.peer.ip(), cfg) else {
            self.stats.search_refused();
            tracing::debug!(peer = %req.conn.peer, "search refused: too many running");
            return Err(VfsError::Jukebox);
        };
        self.stats.search_started();
        let limits = rnfs_vfs::SearchLimits {
            max_dirs: cfg.max_dirs,
            deadline: std::time::Instant::now() + cfg.max_time,
        };
        match x.fs.search(key, &limits) {
            Ok(Searched::Found) => Ok(()),
            Ok(Searched::NotFound) => Err(VfsError::Stale),
            Ok(Searched::GaveUp) => {
                self.stats.search_given_up();
                tracing::info!(peer = %req.conn.peer, ?key, "search for a key given up at its limit; answering STALE");
                Err(VfsError::Stale)
            }
            Err(e) => Err(e),
        }
    }
}
