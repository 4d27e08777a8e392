//! Connections the server opens to a client's callback service: NFSv4.0 callbacks go to
//! the address the client named in SETCLIENTID (`cb_location`, RFC 7530 16.33, 3.3.2),
//! not over a connection the client opened.
//!
//! A client can name any address, so the server must not become a tool for reaching
//! places the client cannot (server-side request forgery). The rules, checked before any
//! connection is attempted ([`check_target`], [`parse_uaddr`]):
//! - only `tcp` / `tcp6` netids (no UDP, no RDMA, no local sockets);
//! - the address must be the client's own source address (the one its SETCLIENTID came
//!   from); a client behind NAT therefore gets no v4.0 callbacks (it gets no
//!   delegations: the server works without them). Port 0 and multicast/unspecified
//!   addresses are refused;
//! - connections are rate-limited server-wide ([`ConnectLimiter`], time as an input), and
//!   every attempt is logged at info with the client's and the target's addresses.
//!
//! A connection is made with a timeout ([`ConnStats::connect_callback`]); calls are sent
//! on it with the same [`Backchannel`] as the v4.1 back channel; it is closed when its
//! [`CallbackConn`] is dropped or the client closes it.
use super::backchannel::{is_reply, CallbackConfig, Channels};
use super::{Backchannel, CloseReason, ConnId, ConnStats};
use crate::record::{encode_record, RecordDecoder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Why a callback address is not connected to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A netid other than `tcp` / `tcp6`.
    #[error("netid {0:?} not supported for callbacks (tcp and tcp6 only)")]
    Netid(String),
    /// The universal address does not parse (RFC 5665 5.2.3).
    #[error("malformed universal address")]
    Uaddr,
    /// The address is not the client's own (or is not a unicast address with a port).
    #[error("callback address {target} refused for a client at {client}")]
    Foreign {
        /// The address the client named.
        target: SocketAddr,
        /// Where the client's call came from.
        client: IpAddr,
    },
    /// Too many callback connections attempted lately.
    #[error("callback connections rate-limited")]
    RateLimited,
}

/// The socket address of a `tcp` or `tcp6` universal address: `h1.h2.h3.h4.p1.p2` for IPv4,
/// an IPv6 text address followed by `.p1.p2` for IPv6 (RFC 5665 5.2.3.3-4).
pub fn parse_uaddr(netid: &str, uaddr: &str) -> Result<SocketAddr, TargetError> {
    let v6 = match netid {
        "tcp" => false,
        "tcp6" => true,
        other => return Err(TargetError::Netid(other.chars().take(16).collect())),
    };
    // The two last dot-separated parts are the port's high and low bytes.
    let (rest, lo) = uaddr.rsplit_once('.').ok_or(TargetError::Uaddr)?;
    let (host, hi) = rest.rsplit_once('.').ok_or(TargetError::Uaddr)?;
    let hi: u8 = hi.parse().map_err(|_| TargetError::Uaddr)?;
    let lo: u8 = lo.parse().map_err(|_| TargetError::Uaddr)?;
    let port = u16::from(hi) << 8 | u16::from(lo);
    let ip = if v6 {
        IpAddr::V6(host.parse::<Ipv6Addr>().map_err(|_| TargetError::Uaddr)?)
    } else {
        IpAddr::V4(host.parse::<Ipv4Addr>().map_err(|_| TargetError::Uaddr)?)
    };
    Ok(SocketAddr::new(ip, port))
}

/// Whether the server may connect to `target` for a client whose calls come from
/// `client`: the same address (an IPv4 client seen over IPv6 as `::ffff:a.b.c.d` counts as
/// the same), a port, a unicast address.
pub fn check_target(target: SocketAddr, client: IpAddr) -> Result<(), TargetError> {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let t = canon(target.ip());
    let ok = target.port() != 0 && !t.is_unspecified() && !t.is_multicast() && t == canon(client);
    if ok {
        Ok(())
    } else {
        Err(TargetError::Foreign { target, client })
    }
}

/// A token bucket for callback connection attempts, server-wide: `burst` at once, then one
/// per `every`. No clock of its own: the caller passes the time (any monotonic origin).
#[derive(Debug, Clone)]
pub struct ConnectLimiter {
    burst: u32,
    every: Duration,
    tokens: u32,
    last: Duration,
}

impl ConnectLimiter {
    /// A limiter allowing `burst` attempts at once and one more per `every`.
    pub fn new(burst: u32, every: Duration) -> Self {
        Self {
            burst: burst.max(1),
            every: every.max(Duration::from_millis(1)),
            tokens: burst.max(1),
            last: Duration::ZERO,
        }
    }

    /// Takes one attempt at `now`, or refuses it.
    pub fn try_take(&mut self, now: Duration) -> Result<(), TargetError> {
        let gained = now.saturating_sub(self.last).as_nanos() / self.every.as_nanos();
        if gained > 0 {
            let g = u32::try_from(gained).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(g).min(self.burst);
            self.last = now;
        }
        if self.tokens == 0 {
            return Err(TargetError::RateLimited);
        }
        self.tokens -= 1;
        Ok(())
    }
}

impl Default for ConnectLimiter {
    /// 16 at once, then 4 a second.
    fn default() -> Self {
        Self::new(16, Duration::from_millis(250))
    }
}

/// An open callback connection; dropping it closes the connection (every call waiting on
/// it fails with [`super::CallbackError::Closed`]).
#[derive(Debug)]
pub struct CallbackConn {
    chan: Backchannel,
    _close: oneshot::Sender<()>,
}

impl CallbackConn {
    /// The handle to send calls on it.
    pub fn backchannel(&self) -> &Backchannel {
        &self.chan
    }
}

/// Largest record read from a callback connection (replies are small).
const MAX_RECORD: usize = 64 * 1024;

impl ConnStats {
    /// Connects to `target` (already checked with [`check_target`]) within `timeout`, on
    /// the runtime of connection `via` (the client's connection that asked for it), and
    /// runs `done` with the connection or the error. `done` runs at once when `via` is
    /// not open.
    pub fn connect_callback(
        &self,
        via: ConnId,
        target: SocketAddr,
        timeout: Duration,
        cfg: CallbackConfig,
        done: impl FnOnce(std::io::Result<CallbackConn>) + Send + 'static,
    ) {
        let Some(rt) = self.channels.runtime_of(via) else {
            done(Err(std::io::ErrorKind::NotConnected.into()));
            return;
        };
        let channels = self.channels.clone();
        rt.spawn(async move {
            let r = connect(channels, target, timeout, cfg).await;
            done(r);
        });
    }
}

async fn connect(
    channels: Arc<Channels>,
    target: SocketAddr,
    timeout: Duration,
    cfg: CallbackConfig,
) -> std::io::Result<CallbackConn> {
    let sock = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(target))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = sock.set_nodelay(true);
    let id = ConnId::next();
    let mut open = channels.open(id, cfg);
    let chan = channels
        .backchannel(id)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
    let (close_tx, mut close_rx) = oneshot::channel::<()>();
    tracing::info!(%target, conn = id.0, "callback connection open");
    tokio::spawn(async move {
        let (mut rd, mut wr) = sock.into_split();
        let mut dec = RecordDecoder::new(MAX_RECORD);
        let mut buf = vec![0u8; 16 * 1024];
        let why = 'conn: loop {
            for call in open.chan.take_queued() {
                if wr
                    .write_all(&encode_record(&call, usize::MAX))
                    .await
                    .is_err()
                {
                    break 'conn CloseReason::PeerClosed;
                }
            }
            tokio::select! {
                _ = &mut close_rx => break 'conn CloseReason::Error,
                () = open.chan.wake.notified() => {}
                r = rd.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break 'conn CloseReason::PeerClosed,
                    Ok(n) => {
                        dec.push(&buf[..n]);
                        loop {
                            match dec.next_record() {
                                Ok(Some(m)) if is_reply(&m) => open.chan.on_reply(m),
                                // Calls from the client on this connection: not served.
                                Ok(Some(_)) => {}
                                Ok(None) => break,
                                Err(_) => break 'conn CloseReason::Error,
                            }
                        }
                    }
                },
            }
        };
        // Waiting calls fail, close hooks run.
        open.why = why;
        drop(open);
    });
    Ok(CallbackConn {
        chan,
        _close: close_tx,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::transport::{CallbackCall, CallbackError};
    use rnfs_proto::rpc::{OpaqueAuth, ReplyHeader, ReplyStatus};
    use rnfs_xdr::Writer;

    #[test]
    fn universal_addresses_of_tcp_and_tcp6_only() {
        assert_eq!(
            parse_uaddr("tcp", "192.168.1.20.3.233"),
            Ok("192.168.1.20:1001".parse().unwrap())
        );
        assert_eq!(
            parse_uaddr("tcp6", "fe80::1.0.80"),
            Ok("[fe80::1]:80".parse().unwrap())
        );
        for bad in [
            "",
            "1.2.3.4",
            "1.2.3.4.5",
            "1.2.3.4.256.1",
            "x.y.z.w.1.1",
            "::1.1.1",
        ] {
            assert_eq!(parse_uaddr("tcp", bad), Err(TargetError::Uaddr), "{bad}");
        }
        assert_eq!(
            parse_uaddr("udp", "1.2.3.4.1.1"),
            Err(TargetError::Netid("udp".into()))
        );
        assert!(matches!(
            parse_uaddr("rdma", ""),
            Err(TargetError::Netid(_))
        ));
    }

    #[test]
    fn only_the_clients_own_address_is_a_callback_target() {
        let client: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(
            check_target("10.0.0.5:700".parse().unwrap(), client),
            Ok(())
        );
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(
            check_target("10.0.0.5:700".parse().unwrap(), mapped),
            Ok(())
        );
        for t in ["10.0.0.6:700", "127.0.0.1:22", "10.0.0.5:0", "[::1]:700"] {
            assert!(
                matches!(
                    check_target(t.parse().unwrap(), client),
                    Err(TargetError::Foreign { .. })
                ),
                "{t}"
            );
        }
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(check_target("0.0.0.0:700".parse().unwrap(), any).is_err());
    }

    #[test]
    fn attempts_are_rate_limited_by_a_bucket_refilled_with_time() {
        let mut l = ConnectLimiter::new(2, Duration::from_secs(1));
        let t = Duration::from_secs(100);
        assert_eq!(l.try_take(t), Ok(()));
        assert_eq!(l.try_take(t), Ok(()));
        assert_eq!(l.try_take(t), Err(TargetError::RateLimited));
        assert_eq!(
            l.try_take(t + Duration::from_millis(999)),
            Err(TargetError::RateLimited)
        );
        assert_eq!(l.try_take(t + Duration::from_secs(1)), Ok(()));
        assert_eq!(
            l.try_take(t + Duration::from_secs(1)),
            Err(TargetError::RateLimited)
        );
        // Refilled to the burst, never past it.
        let later = t + Duration::from_secs(1000);
        assert_eq!(l.try_take(later), Ok(()));
        assert_eq!(l.try_take(later), Ok(()));
        assert_eq!(l.try_take(later), Err(TargetError::RateLimited));
    }

    /// A client's callback service on 127.0.0.1 answering one call with `body`, then
    /// closing.
    async fn cb_service(body: Vec<u8>) -> (SocketAddr, tokio::task::JoinHandle<u32>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut dec = RecordDecoder::new(MAX_RECORD);
            let mut buf = vec![0; 4096];
            let call = loop {
                let n = s.read(&mut buf).await.unwrap();
                dec.push(&buf[..n]);
                if let Some(m) = dec.next_record().unwrap() {
                    break m;
                }
            };
            let xid = u32::from_be_bytes([call[0], call[1], call[2], call[3]]);
            let mut w = Writer::new();
            ReplyHeader::with_status(xid, ReplyStatus::Success).encode(&mut w);
            w.raw(&body);
            s.write_all(&encode_record(&w.into_inner(), usize::MAX))
                .await
                .unwrap();
            // Wait for the server to close.
            let _ = s.read(&mut buf).await;
            u32::from_be_bytes([call[12], call[13], call[14], call[15]])
        });
        (addr, h)
    }

    #[tokio::test]
    async fn a_callback_connection_carries_calls_and_closes_when_dropped() {
        let stats = Arc::new(ConnStats::default());
        // The client's own connection, whose runtime the callback connection uses.
        let via = ConnId::next();
        let _client_conn = stats.channels.open(via, CallbackConfig::default());
        let (addr, svc) = cb_service(vec![9, 9, 9, 9]).await;
        let (tx, rx) = oneshot::channel();
        stats.connect_callback(
            via,
            addr,
            Duration::from_secs(10),
            CallbackConfig::default(),
            move |r| {
                let _ = tx.send(r);
            },
        );
        let conn = rx.await.unwrap().unwrap();
        let cred = OpaqueAuth::none();
        let call = CallbackCall {
            prog: 0x4000_0000,
            vers: 1,
            proc_: 0,
            cred: &cred,
            args: &[],
        };
        let bc = conn.backchannel().clone();
        let r = bc.call(call, Duration::from_secs(10)).await.unwrap();
        assert_eq!(r.body(), &[9, 9, 9, 9]);
        drop(conn);
        assert_eq!(svc.await.unwrap(), 0x4000_0000, "the program called");
        assert!(matches!(
            bc.call(call, Duration::from_secs(10)).await,
            Err(CallbackError::Closed(_))
        ));
        // A connection that is not open has no runtime to connect on.
        let (tx, rx) = oneshot::channel();
        stats.connect_callback(
            ConnId::next(),
            addr,
            Duration::from_secs(1),
            CallbackConfig::default(),
            move |r| {
                let _ = tx.send(r.map(|_| ()));
            },
        );
        assert!(rx.await.unwrap().is_err());
    }
}
