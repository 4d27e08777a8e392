//! The server calling the client on the client's own connection (the NFSv4.1
//! backchannel): the call reaches `RpcConfig::on_call` and its reply goes back on that
//! connection, while the client's own call is answered as usual.
#![allow(clippy::unwrap_used, missing_docs)]
use rnfs_client::rpc::{CallHandler, RpcClient, RpcConfig};
use rnfs_proto::rpc::{CallHeader, OpaqueAuth, ReplyHeader, ReplyStatus};
use rnfs_rpc::message::{decode_call, reply_success};
use rnfs_rpc::record::{encode_record, RecordDecoder};
use rnfs_xdr::{Reader, Writer};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn recv(s: &mut TcpStream, dec: &mut RecordDecoder) -> Vec<u8> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = dec.next_record().unwrap() {
            return r;
        }
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the client closed");
        dec.push(&buf[..n]);
    }
}

#[tokio::test]
async fn a_call_from_the_server_is_answered_on_the_same_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    // The server: takes the client's call, calls the client back before answering it,
    // checks the client's reply, then answers.
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut dec = RecordDecoder::new(1 << 20);
        let call = recv(&mut s, &mut dec).await;
        let call = decode_call(&call).unwrap();
        let mut w = Writer::new();
        CallHeader {
            xid: 77,
            rpcvers: 2,
            prog: 0x4000_0000,
            vers: 1,
            proc_: 1,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        }
        .encode(&mut w);
        w.raw(&[1, 2, 3, 4]);
        s.write_all(&encode_record(&w.into_inner(), 1 << 20))
            .await
            .unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), recv(&mut s, &mut dec))
            .await
            .expect("the client answers the server's call");
        let mut r = Reader::new(&back);
        let h = ReplyHeader::decode(&mut r).unwrap();
        assert_eq!((h.xid, h.status), (77, ReplyStatus::Success));
        assert_eq!(r.rest(), &[4, 3, 2, 1]);
        let mut w = reply_success(call.header.xid, 4);
        w.raw(call.args);
        s.write_all(&encode_record(&w.into_inner(), 1 << 20))
            .await
            .unwrap();
        // Hold the connection until the client is done.
        let _ = s.read(&mut [0u8; 16]).await;
    });
    let handler = CallHandler::new(|msg: &[u8]| {
        let c = decode_call(msg).ok()?;
        let mut w = reply_success(c.header.xid, c.args.len());
        let mut rev = c.args.to_vec();
        rev.reverse();
        w.raw(&rev);
        Some(w.into_inner())
    });
    let client = RpcClient::new(
        addr,
        RpcConfig {
            on_call: Some(handler),
            ..RpcConfig::default()
        },
    );
    let call = client.call_raw(1, 1, 1, vec![9; 4]);
    // Generous: both sides answer at once; the bound only turns a failure into a report
    // instead of a hang (the client retries a hard call forever).
    let r = tokio::time::timeout(Duration::from_secs(20), call).await;
    let received = client.stats().calls_received;
    drop(client);
    // The server's checks first: they say what went wrong.
    server.await.unwrap();
    assert_eq!(r.expect("answered").unwrap().body(), &[9; 4]);
    assert_eq!(received, 1);
}
