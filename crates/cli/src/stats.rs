//! `rnfs stats`: a running server's counters, fetched through its administration program.
use anyhow::{bail, Context, Result};
use rnfs_proto::rpc::ReplyStatus;
use rnfs_rpc::client::SyncClient;
use rnfs_server::admin;
use std::net::SocketAddr;

#[derive(clap::Args)]
pub(crate) struct StatsArgs {
    /// The server's NFS address (it answers statistics to loopback callers only).
    #[arg(long, default_value = "127.0.0.1:2049")]
    server: SocketAddr,
    /// Print the raw Prometheus text instead of the nfsstat-like layout.
    #[arg(long)]
    prometheus: bool,
}

/// Fetches the metrics text from a server.
pub(crate) fn fetch(server: SocketAddr) -> Result<String> {
    let mut c =
        SyncClient::connect(server).with_context(|| format!("cannot connect to {server}"))?;
    let xid = c.xid();
    let (h, body) = c.call_raw_xid(
        xid,
        admin::PROGRAM,
        admin::VERSION,
        admin::PROC_METRICS,
        &[],
    )?;
    if h.status != ReplyStatus::Success {
        bail!(
            "{server} refused the statistics call ({:?}); is it an rnfs server?",
            h.status
        );
    }
    let mut r = rnfs_xdr::Reader::new(&body);
    let text = r.opaque(16 << 20).context("bad statistics reply")?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

pub(crate) fn stats(a: StatsArgs) -> Result<()> {
    let text = fetch(a.server)?;
    if a.prometheus {
        print!("{text}");
    } else {
        print!("{}", admin::nfsstat_layout(&admin::parse_metrics(&text)));
    }
    Ok(())
}
