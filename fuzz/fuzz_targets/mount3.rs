//! MOUNT v3 types (rnfs_proto::mount3), plus the portmap mapping.
//!
//! `data[0]` selects a type; the rest is decoded with `from_bytes` (and as a prefix with a
//! `Reader`). Whatever decodes must re-encode to exactly the bytes it came from and decode
//! again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_fuzz::{check_type, ExportList, MountList, PmapMapping};
use rnfs_proto::mount3::*;

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let all: &[fn(&[u8])] = &[
        check_type::<DirPath>,     // 0: MNT / UMNT arguments
        check_type::<MountRes>,    // 1: MNT result
        check_type::<MountList>,   // 2: DUMP result
        check_type::<ExportList>,  // 3: EXPORT result
        check_type::<ExportNode>,  // 4
        check_type::<MountBody>,   // 5
        check_type::<MountResOk>,  // 6
        check_type::<Name>,        // 7
        check_type::<MountStat3>,  // 8
        check_type::<Proc>,        // 9
        check_type::<PmapMapping>, // 10: portmap SET/UNSET/GETPORT arguments
    ];
    all[usize::from(sel) % all.len()](input)
});
