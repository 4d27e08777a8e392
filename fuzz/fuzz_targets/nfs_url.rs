//! The client's `nfs://` URL parser (rnfs_client::url::NfsUrl::parse).
//!
//! Arbitrary text must never panic. A URL that parses has an absolute path with no empty,
//! `.` or `..` component, and printing it back in a canonical form (host, percent-encoded
//! path, every option as a query parameter) must parse to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnfs_client::url::NfsUrl;
use std::fmt::Write;

fn canonical(u: &NfsUrl) -> Option<String> {
    // Naming every field makes a new one a compile error here until it is printed below.
    let NfsUrl {
        host: _,
        path: _,
        nfsport: _,
        mountport: _,
        uid: _,
        gid: _,
        soft: _,
        timeo: _,
        retrans: _,
        rsize: _,
        wsize: _,
        readahead: _,
        privport: _,
        version: _,
    } = u;
    if u.host.contains(['[', ']']) || (u.host.is_empty() && u.nfsport.is_none()) {
        return None; // no canonical authority for these
    }
    let mut s = String::from("nfs://");
    if u.host.contains(':') {
        write!(s, "[{}]", u.host).ok()?;
    } else {
        s.push_str(&u.host);
    }
    if let Some(p) = u.nfsport {
        write!(s, ":{p}").ok()?;
    }
    for c in u.components() {
        s.push('/');
        for b in c.bytes() {
            if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
                s.push(char::from(b));
            } else {
                write!(s, "%{b:02X}").ok()?;
            }
        }
    }
    let mut q = Vec::new();
    if let Some(v) = u.mountport {
        q.push(format!("mountport={v}"));
    }
    if let Some(v) = u.uid {
        q.push(format!("uid={v}"));
    }
    if let Some(v) = u.gid {
        q.push(format!("gid={v}"));
    }
    match u.soft {
        Some(true) => q.push("soft".into()),
        Some(false) => q.push("hard".into()),
        None => {}
    }
    if let Some(v) = u.timeo {
        q.push(format!("timeo={v}"));
    }
    if let Some(v) = u.retrans {
        q.push(format!("retrans={v}"));
    }
    if let Some(v) = u.rsize {
        q.push(format!("rsize={v}"));
    }
    if let Some(v) = u.wsize {
        q.push(format!("wsize={v}"));
    }
    if let Some(v) = u.readahead {
        q.push(format!("readahead={v}"));
    }
    if let Some(v) = u.privport {
        q.push(format!("privport={}", u8::from(v)));
    }
    match u.version {
        Some(rnfs_client::NfsVersion::V3) => q.push("version=3".into()),
        Some(rnfs_client::NfsVersion::V41) => q.push("version=4.1".into()),
        None => {}
    }
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    Some(s)
}

fuzz_target!(|data: &[u8]| {
    rnfs_fuzz::abort_on_panic();
    // Most inputs the fuzzer makes lack the scheme: an odd first byte stands for "nfs://".
    let (scheme, body) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => ("nfs://", rest),
        _ => ("", data),
    };
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    let text = format!("{scheme}{body}");
    let text = text.as_str();
    let Ok(u) = NfsUrl::parse(text) else {
        return;
    };
    assert!(u.path.starts_with('/'), "path {:?}", u.path);
    assert!(u.path == "/" || !u.path.ends_with('/'), "path {:?}", u.path);
    for c in u.components() {
        assert!(
            !c.is_empty() && c != "." && c != ".." && !c.contains('\0'),
            "component {c:?}"
        );
    }
    assert_eq!(
        u.components().join("/"),
        u.path[1..],
        "components of {:?}",
        u.path
    );
    if let Some(s) = canonical(&u) {
        let again = NfsUrl::parse(&s)
            .unwrap_or_else(|e| panic!("canonical form {s:?} of {text:?} does not parse: {e}"));
        assert_eq!(again, u, "canonical form {s:?} of {text:?}");
    }
});
