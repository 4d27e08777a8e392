//! The checked-in NFSv4 wire types are exactly what xdrgen makes of the `.x` and the
//! limits: nobody edits `generated.rs` by hand.
use std::path::Path;

#[test]
fn nfs4_generated_rs_is_up_to_date() {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let read =
        |p: &str| std::fs::read_to_string(proto.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let want = xdrgen::generate(
        &read("xdr/nfs4.x"),
        &read("xdr/nfs4.limits"),
        "crates/proto/xdr/nfs4.x and crates/proto/xdr/nfs4.limits",
    )
    .unwrap_or_else(|e| panic!("xdrgen failed on nfs4.x: {e}"));
    let have = read("src/nfs4/generated.rs");
    if have != want {
        let line = have.lines().zip(want.lines()).position(|(a, b)| a != b);
        panic!(
            "crates/proto/src/nfs4/generated.rs differs from xdrgen's output (first at line {}); \
             regenerate: cargo run -p xdrgen -- crates/proto/xdr/nfs4.x crates/proto/xdr/nfs4.limits \
             crates/proto/src/nfs4/generated.rs",
            line.map_or(have.lines().count().min(want.lines().count()) + 1, |l| l + 1)
        );
    }
}
