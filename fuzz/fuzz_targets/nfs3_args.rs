//! NFSv3 argument and result types (rnfs_proto::nfs3).
//!
//! `data[0]` selects a type; the rest is decoded with `from_bytes` (and as a prefix with a
//! `Reader`). Whatever decodes must re-encode to exactly the bytes it came from (XDR is
//! canonical) and decode again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_fuzz::check_type;
use rnfs_proto::nfs3::*;

/// Calls `check_type` for the type at index `$sel` (mod the count) of the list: every NFSv3
/// type the server decodes (arguments) or a client decodes (results). make_seeds relies on
/// this order.
macro_rules! types {
    ($sel:expr, $input:expr, $($t:ty),* $(,)?) => {{
        let all: &[fn(&[u8])] = &[$(check_type::<$t>),*];
        all[usize::from($sel) % all.len()]($input)
    }};
}

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    types!(
        sel,
        input,
        // 0..=21: the arguments of procedures 0..=21.
        (),
        GetattrArgs,
        SetattrArgs,
        DirOpArgs3, // LOOKUP
        AccessArgs,
        ReadlinkArgs,
        ReadArgs,
        WriteArgs,
        CreateArgs,
        MkdirArgs,
        SymlinkArgs,
        MknodArgs,
        DirOpArgs3, // REMOVE
        DirOpArgs3, // RMDIR
        RenameArgs,
        LinkArgs,
        ReaddirArgs,
        ReaddirplusArgs,
        GetattrArgs, // FSSTAT
        GetattrArgs, // FSINFO
        GetattrArgs, // PATHCONF
        CommitArgs,
        // 22..=43: the results of procedures 0..=21.
        (),
        GetattrRes,
        SetattrRes,
        LookupRes,
        AccessRes,
        ReadlinkRes,
        ReadRes,
        WriteRes,
        CreateRes, // CREATE
        CreateRes, // MKDIR
        CreateRes, // SYMLINK
        CreateRes, // MKNOD
        RemoveRes,
        RemoveRes, // RMDIR
        RenameRes,
        LinkRes,
        ReaddirRes,
        ReaddirplusRes,
        FsstatRes,
        FsinfoRes,
        PathconfRes,
        CommitRes,
        // 44..: building blocks.
        FileHandle3,
        Fattr3,
        Sattr3,
        SetTime,
        WccData,
        CreateHow3,
        MknodData3,
        Entry3,
        EntryPlus3,
        Data,
        Proc,
        Nfsstat3,
    )
});
