//! The client's side of the call table: how a call's record is made (header, arguments,
//! bulk data sent without a copy). The table itself (xids, timeouts, retransmission, replay
//! after reconnect) is [`rnfs_rpc::xid`], shared with the server's callbacks; its names are
//! re-exported here with the client's record and buffer types filled in.
use super::buf::{Buf, Slice};
use rnfs_proto::rpc::{CallHeader, OpaqueAuth};
use rnfs_rpc::outbox::Pieces;
use rnfs_rpc::record::single_fragment_header;
use rnfs_xdr::{padding, Writer};
use std::sync::Arc;

pub use rnfs_rpc::xid::{Backoff, RetryMode, RetryPolicy, TableStats, Xid};

/// The table of the client's calls in flight (see [`rnfs_rpc::xid::CallTable`]).
pub type CallTable<W> = rnfs_rpc::xid::CallTable<W, Record, Buf>;

/// What the driver must do after an event (see [`rnfs_rpc::xid::Output`]).
pub type Output<W> = rnfs_rpc::xid::Output<W, Record, Buf>;

/// A call to start.
#[derive(Debug, Clone)]
pub struct CallSpec<'a> {
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_: u32,
    /// Credential.
    pub cred: &'a OpaqueAuth,
    /// Encoded arguments.
    pub args: &'a [u8],
    /// Bulk data sent after `args` without a copy (the contents of an XDR opaque whose
    /// length `args` ends with; the padding is added), e.g. a WRITE's data.
    pub bulk: Option<Slice>,
}

/// A call's record (RFC 5531 section 11, one fragment): the record mark, the call header
/// and the arguments, then any bulk data and its padding. Cheap to clone (shared parts),
/// sent with one vectored write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    head: Arc<Vec<u8>>,
    bulk: Option<Slice>,
}

impl Record {
    /// The record mark, the call header and the encoded arguments.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// A whole message (a reply to the server's call) as one record; `None` if it is too
    /// long for one.
    pub fn message(msg: &[u8]) -> Option<Self> {
        let mark = single_fragment_header(msg.len())?;
        let mut head = Vec::with_capacity(msg.len() + 4);
        head.extend_from_slice(&mark);
        head.extend_from_slice(msg);
        Some(Self {
            head: Arc::new(head),
            bulk: None,
        })
    }
}

/// A record goes out as its head, the bulk data and the bulk's padding (bytes on the wire:
/// [`Pieces::wire_len`]).
impl Pieces for Record {
    fn pieces(&self) -> [&[u8]; 3] {
        let bulk = self.bulk.as_deref().unwrap_or_default();
        [&self.head, bulk, &[0u8; 3][..padding(bulk.len())]]
    }
}

/// The record of `call` with transaction id `xid`, as [`CallTable::start`] sends it.
pub fn record(xid: Xid, call: CallSpec<'_>) -> Record {
    let mut w = Writer::with_capacity(call.args.len() + 132);
    w.u32(0); // the record mark, set below
    CallHeader {
        xid: xid.0,
        rpcvers: 2,
        prog: call.prog,
        vers: call.vers,
        proc_: call.proc_,
        cred: call.cred.clone(),
        verf: OpaqueAuth::none(),
    }
    .encode(&mut w);
    w.raw(call.args);
    let bulk = call.bulk.as_ref().map_or(0, |b| b.len() + padding(b.len()));
    // One fragment (a call is far below 2^31 bytes: arguments are bounded by wsize).
    let size = (w.len() - 4 + bulk).min(0x7fff_ffff);
    let mark = single_fragment_header(size).unwrap_or_default();
    w.patch_u32(0, u32::from_be_bytes(mark));
    Record {
        head: Arc::new(w.into_inner()),
        bulk: call.bulk,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec(cred: &OpaqueAuth) -> CallSpec<'_> {
        CallSpec {
            prog: 100003,
            vers: 3,
            proc_: 0,
            cred,
            args: &[],
            bulk: None,
        }
    }

    #[test]
    fn bulk_data_follows_the_arguments_padded_and_counted_in_the_record_mark() {
        let cred = OpaqueAuth::none();
        let data = Slice::from_vec(vec![9; 5]);
        let call = CallSpec {
            args: &[0, 0, 0, 5],
            bulk: Some(data.clone()),
            ..spec(&cred)
        };
        let rec = record(Xid(1), call);
        let [head, bulk, pad] = rec.pieces();
        assert_eq!(&head[head.len() - 4..], &[0, 0, 0, 5]);
        assert_eq!(bulk, &[9; 5]);
        assert_eq!(pad, &[0; 3]);
        let mark = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        assert_eq!(
            mark,
            0x8000_0000 | (rec.wire_len() as u32 - 4),
            "last fragment, whole length"
        );
        assert_eq!(rec.wire_len() % 4, 0);
        // the wire bytes are those of the same call with the data inside the arguments
        let mut flat = Vec::new();
        for p in rec.pieces() {
            flat.extend_from_slice(p);
        }
        let args = [&[0, 0, 0, 5][..], &[9; 5], &[0; 3]].concat();
        let rec2 = record(
            Xid(1),
            CallSpec {
                args: &args,
                ..spec(&cred)
            },
        );
        assert_eq!(flat, rec2.head());
    }
}
