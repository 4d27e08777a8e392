//! The limits file: decoding bounds for items the `.x` leaves unbounded, and the
//! unions that decode unknown discriminants instead of failing.
//!
//! ```text
//! # comment
//! limit KEY MAX     # KEY: a typedef, `struct.field`, `union.arm`, or default.opaque /
//!                   #      default.string / default.array
//! open UNION
//! ```
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use crate::GenError;

/// Parsed limits. Remembers which keys were used so that a misspelt key is an error.
#[derive(Debug, Default)]
pub struct Limits {
    limits: BTreeMap<String, u32>,
    open: BTreeSet<String>,
    used: RefCell<BTreeSet<String>>,
}

impl Limits {
    /// Parses the limits file.
    pub fn parse(src: &str) -> Result<Self, GenError> {
        let mut l = Self::default();
        for (n, raw) in src.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |msg: &str| GenError::Limits {
                line: n + 1,
                msg: msg.to_string(),
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["limit", key, max] => {
                    let max: u32 = max.parse().map_err(|_| bad("the limit is not a u32"))?;
                    if l.limits.insert((*key).to_string(), max).is_some() {
                        return Err(bad("key given twice"));
                    }
                }
                ["open", name] => {
                    l.open.insert((*name).to_string());
                }
                _ => return Err(bad("expected `limit KEY MAX` or `open UNION`")),
            }
        }
        Ok(l)
    }

    /// The first of `keys` that has a limit.
    pub fn lookup(&self, keys: &[&str]) -> Option<u32> {
        keys.iter().find_map(|k| {
            let v = self.limits.get(*k)?;
            self.used.borrow_mut().insert((*k).to_string());
            Some(*v)
        })
    }

    /// Whether `union` is marked open.
    pub fn is_open(&self, union: &str) -> bool {
        let open = self.open.contains(union);
        if open {
            self.used.borrow_mut().insert(format!("open {union}"));
        }
        open
    }

    /// Keys and open marks that no definition used (likely misspelt); defaults may go
    /// unused.
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.borrow();
        let limits = self
            .limits
            .keys()
            .filter(|k| !used.contains(*k) && !k.starts_with("default."))
            .cloned();
        let open = self
            .open
            .iter()
            .map(|u| format!("open {u}"))
            .filter(|k| !used.contains(k));
        limits.chain(open).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_tracks_use() {
        let l = Limits::parse("# c\nlimit a.b 7 # why\nlimit x 9\nopen u\n").unwrap();
        assert_eq!(l.lookup(&["nope", "a.b"]), Some(7));
        assert!(l.is_open("u"));
        assert_eq!(l.unused(), vec!["x".to_string()]);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(Limits::parse("limit a").is_err());
        assert!(Limits::parse("limit a -1").is_err());
        assert!(Limits::parse("limit a 1\nlimit a 2").is_err());
        assert!(Limits::parse("bound a 1").is_err());
    }
}
