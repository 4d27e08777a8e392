//! The whole server: NfsServer (MOUNT + NFSv3) over a MemFs, fed call messages.
//!
//! First byte odd: the input is the call message as it is. First byte even: a structured
//! call (see `rnfs_fuzz::structured_call`): a valid header with an AUTH_SYS or AUTH_NONE
//! credential, the procedure from `data[1]`, a real file handle at the front of the
//! arguments and `FF 'F' 'H' i` markers replaced by real handles, so that calls reach the
//! procedures and the file system rather than stopping at the decoders.
//!
//! Properties: no panic (the panic hook aborts even where NfsServer::call catches one), and
//! every reply passes `rnfs_fuzz::check_reply` (a reply header with the call's xid, no
//! SYSTEM_ERR, results that decode exactly as the procedure's result type, READ/WRITE
//! counts within bounds). The server is built once and keeps its state between inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_rpc::transport::Service;

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    let h = rnfs_fuzz::harness();
    let Some(&first) = data.first() else {
        return;
    };
    let msg = if first & 1 == 0 {
        rnfs_fuzz::structured_call(h, data).0
    } else {
        data.to_vec()
    };
    if let Some(reply) = h.server.call(&h.conn, &msg) {
        rnfs_fuzz::check_reply(&msg, &reply);
    }
});
