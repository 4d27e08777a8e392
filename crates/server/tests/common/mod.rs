//! An in-process server on 127.0.0.1 and a typed NFSv3 test client.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]
use rnfs_proto::mount3::{self, MountRes};
use rnfs_proto::nfs3::*;
use rnfs_rpc::client::SyncClient;
use rnfs_rpc::transport::{serve, Config};
use rnfs_server::{Export, NfsServer, ServerConfig};
use rnfs_vfs::Backend;
use rnfs_xdr::{OpaqueFixed, XdrString};
use std::net::SocketAddr;
use std::sync::Arc;

pub mod v40;

pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Arc<NfsServer>,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start(fs: Arc<dyn Backend>) -> Self {
        Self::start_with(fs, ServerConfig::default(), Config::default())
    }

    pub fn start_export(e: Export) -> Self {
        Self::start_server(
            NfsServer::new(e, ServerConfig::default()),
            Config::default(),
        )
    }

    pub fn start_with(fs: Arc<dyn Backend>, cfg: ServerConfig, tcfg: Config) -> Self {
        Self::start_server(NfsServer::new(Export::new(1, "/", fs), cfg), tcfg)
    }

    pub fn start_server(server: NfsServer, tcfg: Config) -> Self {
        let server = Arc::new(server);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (atx, arx) = std::sync::mpsc::channel();
        let s2 = server.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                atx.send(l.local_addr().unwrap()).unwrap();
                // The server's own connection table, as `rnfs serve` does: its callbacks
                // (NFSv4.1 back channel, NFSv4.0 connections) need it.
                let stats = s2.conn_stats.clone();
                serve(l, s2, tcfg, stats, rx).await.unwrap();
            });
        });
        let addr = arx.recv().unwrap();
        Self {
            addr,
            server,
            shutdown: tx,
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Nfs {
        Nfs::connect(self.addr)
    }

    /// An NFSv4 server with `v4` over a memory file system whose root anyone may create
    /// in (tests open files as AUTH_NONE).
    pub fn start_v4(v4: rnfs_server::v4::service::V4Options) -> Self {
        let fs = Arc::new(rnfs_vfs::memory::MemFs::with_root(1 << 20, 0, 0, 0o777));
        let cfg = ServerConfig {
            v4: Some(v4),
            ..ServerConfig::default()
        };
        Self::start_with(fs, cfg, Config::default())
    }

    pub fn v4(&self) -> &Arc<rnfs_server::v4::service::V4State> {
        self.server.v4().unwrap()
    }

    /// Waits until `f` holds of the NFSv4 state, at most `V4_WAIT`.
    pub fn until(&self, what: &str, f: impl Fn(&rnfs_server::v4::service::V4State) -> bool) {
        let until = std::time::Instant::now() + V4_WAIT;
        while !f(self.v4()) {
            assert!(std::time::Instant::now() < until, "never {what}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// How long an NFSv4 test waits for what the server is to do: generous, only a server
/// that never does it makes a test wait this long.
pub const V4_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn name(s: &str) -> Filename3 {
    XdrString(s.as_bytes().to_vec())
}

pub fn dirop(dir: &FileHandle3, n: &str) -> DirOpArgs3 {
    DirOpArgs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

/// A typed NFSv3 client for tests; methods panic on transport errors, return statuses.
pub struct Nfs {
    pub c: SyncClient,
    pub root: FileHandle3,
}

impl Nfs {
    pub fn connect(addr: SocketAddr) -> Self {
        let mut c = SyncClient::connect(addr).unwrap();
        c.auth_sys(0, 0, &[]);
        let res: MountRes = c
            .call(
                mount3::PROGRAM,
                mount3::VERSION,
                mount3::Proc::Mnt as u32,
                &XdrString::<1024>(b"/".to_vec()),
            )
            .unwrap();
        let MountRes::Ok(ok) = res else {
            panic!("mount failed: {res:?}")
        };
        Self {
            c,
            root: ok.fhandle,
        }
    }

    pub fn call<A: rnfs_xdr::Xdr, R: rnfs_xdr::Xdr>(&mut self, p: Proc, a: &A) -> R {
        self.c.call(PROGRAM, VERSION, p as u32, a).unwrap()
    }

    /// A NULL call: a call that does not fail, which ends the slowing down of a connection
    /// whose calls kept failing by its own fault (`rnfs_rpc::transport::limits::Penalty`),
    /// without touching the backend.
    pub fn null(&mut self) {
        self.call::<_, ()>(Proc::Null, &());
    }

    pub fn getattr(&mut self, fh: &FileHandle3) -> Result<Fattr3, Nfsstat3> {
        match self.call::<_, GetattrRes>(Proc::Getattr, &GetattrArgs { object: fh.clone() }) {
            Res::Ok(a) => Ok(a),
            Res::Fail(s, ()) => Err(s),
        }
    }

    pub fn lookup(
        &mut self,
        dir: &FileHandle3,
        n: &str,
    ) -> Result<(FileHandle3, Fattr3), Nfsstat3> {
        match self.call::<_, LookupRes>(Proc::Lookup, &dirop(dir, n)) {
            Res::Ok(o) => Ok((o.object, o.obj_attributes.unwrap())),
            Res::Fail(s, _) => Err(s),
        }
    }

    pub fn create(
        &mut self,
        dir: &FileHandle3,
        n: &str,
        how: CreateHow3,
    ) -> Result<FileHandle3, Nfsstat3> {
        match self.call::<_, CreateRes>(
            Proc::Create,
            &CreateArgs {
                where_: dirop(dir, n),
                how,
            },
        ) {
            Res::Ok(o) => Ok(o.obj.unwrap()),
            Res::Fail(s, _) => Err(s),
        }
    }

    pub fn file(&mut self, dir: &FileHandle3, n: &str) -> FileHandle3 {
        self.create(
            dir,
            n,
            CreateHow3::Unchecked(Sattr3 {
                mode: Some(0o644),
                ..Default::default()
            }),
        )
        .unwrap()
    }

    pub fn mkdir(&mut self, dir: &FileHandle3, n: &str) -> Result<FileHandle3, Nfsstat3> {
        let a = MkdirArgs {
            where_: dirop(dir, n),
            attributes: Sattr3 {
                mode: Some(0o755),
                ..Default::default()
            },
        };
        match self.call::<_, CreateRes>(Proc::Mkdir, &a) {
            Res::Ok(o) => Ok(o.obj.unwrap()),
            Res::Fail(s, _) => Err(s),
        }
    }

    pub fn write(
        &mut self,
        fh: &FileHandle3,
        off: u64,
        data: &[u8],
        stable: StableHow,
    ) -> Result<WriteOk, Nfsstat3> {
        let a = WriteArgs {
            file: fh.clone(),
            offset: off,
            count: data.len() as u32,
            stable,
            data: Data(data.to_vec()),
        };
        match self.call::<_, WriteRes>(Proc::Write, &a) {
            Res::Ok(o) => Ok(o),
            Res::Fail(s, _) => Err(s),
        }
    }

    pub fn read(
        &mut self,
        fh: &FileHandle3,
        off: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), Nfsstat3> {
        match self.call::<_, ReadRes>(
            Proc::Read,
            &ReadArgs {
                file: fh.clone(),
                offset: off,
                count,
            },
        ) {
            Res::Ok(o) => Ok((o.data.0, o.eof)),
            Res::Fail(s, _) => Err(s),
        }
    }

    pub fn remove(&mut self, dir: &FileHandle3, n: &str) -> Result<(), Nfsstat3> {
        match self.call::<_, RemoveRes>(Proc::Remove, &dirop(dir, n)) {
            Res::Ok(_) => Ok(()),
            Res::Fail(s, _) => Err(s),
        }
    }

    /// Lists a directory completely with READDIR(PLUS) replies of at most `count` bytes.
    pub fn list(
        &mut self,
        dir: &FileHandle3,
        count: u32,
        plus: bool,
    ) -> Result<Vec<String>, Nfsstat3> {
        let mut names = Vec::new();
        let (mut cookie, mut verf) = (0u64, OpaqueFixed([0u8; 8]));
        loop {
            let (entries, v, eof): (Vec<(String, u64)>, _, bool) = if plus {
                let a = ReaddirplusArgs {
                    dir: dir.clone(),
                    cookie,
                    cookieverf: verf,
                    dircount: count,
                    maxcount: count,
                };
                match self.call::<_, ReaddirplusRes>(Proc::Readdirplus, &a) {
                    Res::Ok(o) => (
                        o.entries
                            .into_iter()
                            .map(|e| (e.name.lossy().into_owned(), e.cookie))
                            .collect(),
                        o.cookieverf,
                        o.eof,
                    ),
                    Res::Fail(s, _) => return Err(s),
                }
            } else {
                let a = ReaddirArgs {
                    dir: dir.clone(),
                    cookie,
                    cookieverf: verf,
                    count,
                };
                match self.call::<_, ReaddirRes>(Proc::Readdir, &a) {
                    Res::Ok(o) => (
                        o.entries
                            .into_iter()
                            .map(|e| (e.name.lossy().into_owned(), e.cookie))
                            .collect(),
                        o.cookieverf,
                        o.eof,
                    ),
                    Res::Fail(s, _) => return Err(s),
                }
            };
            verf = v;
            for (n, c) in entries {
                names.push(n);
                cookie = c;
            }
            if eof {
                return Ok(names);
            }
        }
    }
}

pub fn local() -> (tempfile::TempDir, Arc<dyn Backend>) {
    let d = tempfile::tempdir().unwrap();
    let fs = Arc::new(rnfs_vfs::local::LocalFs::new(d.path(), false).unwrap());
    (d, fs)
}

pub fn memory(cap: u64) -> Arc<dyn Backend> {
    Arc::new(rnfs_vfs::memory::MemFs::new(cap))
}
