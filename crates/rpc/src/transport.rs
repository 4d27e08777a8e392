//! The TCP transport of the server: the only part of the RPC layer that does I/O.
//!
//! Each connection has a reader task that assembles records and starts one blocking task
//! per call (at most `max_in_flight` at once, which bounds memory per connection), and a
//! writer task that sends replies as they complete, in any order. A malformed stream (a
//! record over the size limit) closes the connection; nothing the peer sends can make the
//! server allocate more than the limits allow.
use crate::record::{encode_record, RecordDecoder};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, info, warn, Instrument};

/// A program (or set of programs) answering calls. Called on a blocking thread.
pub trait Service: Send + Sync + 'static {
    /// Handles one call message (without record mark); returns the reply message, or
    /// `None` to send nothing (a duplicate in progress, an undecodable message).
    fn call(&self, conn: &ConnInfo, msg: &[u8]) -> Option<Vec<u8>>;
}

/// What a service knows about the connection a call came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address the client connected to.
    pub local: SocketAddr,
}

/// Transport limits.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Largest record accepted (a WRITE of wtmax plus headers must fit).
    pub max_record: usize,
    /// Calls executing at once per connection.
    pub max_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_record: (1 << 20) + 64 * 1024,
            max_in_flight: 64,
        }
    }
}

/// Connection counters.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted since start.
    pub total: AtomicU64,
}

/// Accepts connections on `listener` until `shutdown` turns true, then stops accepting,
/// lets each connection finish the calls it has started and returns.
pub async fn serve(
    listener: TcpListener,
    svc: Arc<dyn Service>,
    cfg: Config,
    stats: Arc<ConnStats>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (sock, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let local = sock.local_addr()?;
                let _ = sock.set_nodelay(true);
                let conn = ConnInfo { peer, local };
                let svc = svc.clone();
                let stats = stats.clone();
                let sd = shutdown.clone();
                stats.open.fetch_add(1, Ordering::Relaxed);
                stats.total.fetch_add(1, Ordering::Relaxed);
                conns.spawn(async move {
                    connection(sock, conn, svc, cfg, sd).await;
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                }.instrument(tracing::info_span!("conn", %peer)));
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    info!(
        connections = conns.len(),
        "listener closed; finishing calls in flight"
    );
    while conns.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    sock: TcpStream,
    conn: ConnInfo,
    svc: Arc<dyn Service>,
    cfg: Config,
    mut shutdown: watch::Receiver<bool>,
) {
    debug!("connected");
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(cfg.max_in_flight.max(1));
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let framed = encode_record(&reply, 1 << 30);
            if let Err(e) = wr.write_all(&framed).await {
                debug!(error = %e, "write failed");
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let permits = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    let mut dec = RecordDecoder::new(cfg.max_record);
    let mut buf = vec![0u8; 256 * 1024];
    'read: loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => { debug!(error = %e, "read failed"); break; }
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
                continue;
            }
        };
        dec.push(&buf[..n]);
        loop {
            match dec.next_record() {
                Ok(Some(msg)) => {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        break 'read;
                    };
                    let svc = svc.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let reply =
                            tokio::task::spawn_blocking(move || svc.call(&conn, &msg)).await;
                        match reply {
                            Ok(Some(r)) => {
                                let _ = tx.send(r).await;
                            }
                            Ok(None) => {}
                            Err(e) => warn!(error = %e, "call handler failed"),
                        }
                        drop(permit);
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "closing connection: bad record");
                    break 'read;
                }
            }
        }
    }
    // Let calls in flight finish and their replies go out before closing.
    let _ = permits.acquire_many(cfg.max_in_flight.max(1) as u32).await;
    drop(tx);
    let _ = writer.await;
    debug!("closed");
}
