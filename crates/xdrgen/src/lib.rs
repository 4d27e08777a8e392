//! xdrgen: Rust from the XDR language (RFC 4506 section 6), for rnfs.
//!
//! Input: a `.x` specification (consts, typedefs, enums, structs, unions with
//! fall-through cases and defaults, optional data, fixed and variable arrays, opaque
//! data and strings, hypers, bools, RPC programs) and a limits file (see [`Limits`]).
//! Output: one Rust module using `rnfs_xdr` ([`Xdr`](../rnfs_xdr/trait.Xdr.html),
//! `Reader`, `Writer`), in which every variable-length item has a bound.
//!
//! Naming: types and enum values become Rust CamelCase by splitting the XDR name at
//! `_` and capitalising each part's first letter with the rest in lower case
//! (`nfs_argop4` → `NfsArgop4`, `COMPOUND4args` → `Compound4args`, `NFS4ERR_OP_ILLEGAL`
//! → `Nfs4errOpIllegal`). Fields keep their XDR names (`r#type` for keywords); consts
//! keep theirs. Union arms are named after their case labels, `Default` for the default
//! arm (carrying the discriminant), `Unknown(u32)` for the undeclared values of an open
//! union. A struct whose last field points to its own type (`entry4 *nextentry`) is a
//! list: the link is not a field, and `T *x` elsewhere becomes `XdrList<T, MAX>`, which
//! decodes without recursion.
#![forbid(unsafe_code)]

mod emit;
mod lex;
mod limits;
pub mod parse;

pub use limits::Limits;

/// Why generation failed. All are faults of the input files.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// The `.x` text is not valid XDR language.
    #[error("line {line}: {msg}")]
    Syntax {
        /// Line of the offending token.
        line: usize,
        /// What was wrong.
        msg: String,
    },
    /// The limits file has a malformed line.
    #[error("limits line {line}: {msg}")]
    Limits {
        /// Line number.
        line: usize,
        /// What was wrong.
        msg: String,
    },
    /// The specification is well-formed but cannot be generated.
    #[error("{0}")]
    Semantic(String),
}

/// Generates the Rust module for `spec` (XDR language) under `limits`. `source` names
/// the inputs in the header comment.
pub fn generate(spec: &str, limits: &str, source: &str) -> Result<String, GenError> {
    let defs = parse::parse(&lex::lex(spec)?)?;
    let limits = Limits::parse(limits)?;
    let out = emit::emit(&defs, &limits, source)?;
    let unused = limits.unused();
    if !unused.is_empty() {
        return Err(GenError::Semantic(format!(
            "limits never used: {}",
            unused.join(", ")
        )));
    }
    Ok(out)
}

/// Parses `spec` (XDR language) into its definitions, for tools that inspect a
/// specification without generating code.
pub fn parse_spec(spec: &str) -> Result<Vec<parse::Definition>, GenError> {
    parse::parse(&lex::lex(spec)?)
}

/// The Rust CamelCase form of an XDR name (see the crate documentation).
pub fn camel(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            s.push(c.to_ascii_uppercase());
            s.extend(cs.map(|c| c.to_ascii_lowercase()));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case() {
        assert_eq!(camel("nfs_argop4"), "NfsArgop4");
        assert_eq!(camel("COMPOUND4args"), "Compound4args");
        assert_eq!(camel("NFS4ERR_OP_ILLEGAL"), "Nfs4errOpIllegal");
        assert_eq!(camel("state_protect4_a"), "StateProtect4A");
    }

    #[test]
    fn misspelt_limit_is_an_error() {
        let e = generate("typedef opaque o<>;", "limit o 4\nlimit typo 5", "t").unwrap_err();
        assert!(e.to_string().contains("typo"), "{e}");
    }
}
