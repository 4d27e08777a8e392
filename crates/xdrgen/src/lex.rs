//! Tokens of the XDR language (RFC 4506 section 6.2): identifiers, numbers and
//! punctuation. Comments are kept as the documentation of what follows them.
use crate::GenError;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A name or keyword.
    Ident(String),
    /// A number as written (decimal, `0x` hex, leading-zero octal; maybe negative).
    Num(i128),
    /// One punctuation character.
    Punct(char),
}

/// A token, the line it starts on, and the comment just before it, if any.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) line: usize,
    pub(crate) doc: Option<String>,
}

/// Splits `src` into tokens. `%` lines (rpcgen pass-through) are skipped.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, GenError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut doc: Option<String> = None;
    let mut at_line_start = true;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
            at_line_start = true;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if at_line_start && c == b'%' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        at_line_start = false;
        if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").ok_or_else(|| GenError::Syntax {
                line,
                msg: "unterminated comment".into(),
            })?;
            let body = &src[i + 2..i + 2 + end];
            line += body.matches('\n').count();
            doc = Some(clean_comment(body));
            i += end + 4;
            continue;
        }
        if b[i..].starts_with(b"//") {
            let start = i + 2;
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            doc = Some(src[start..i].trim().to_string());
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Tok::Ident(src[start..i].to_string())
        } else if c.is_ascii_digit() || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            Tok::Num(parse_num(&src[start..i]).ok_or_else(|| GenError::Syntax {
                line,
                msg: format!("bad number {}", &src[start..i]),
            })?)
        } else if b"{}[]<>()=;,:*".contains(&c) {
            i += 1;
            Tok::Punct(c as char)
        } else {
            return Err(GenError::Syntax {
                line,
                msg: format!("unexpected character {:?}", c as char),
            });
        };
        out.push(Token {
            tok,
            line,
            doc: doc.take(),
        });
    }
    Ok(out)
}

fn parse_num(s: &str) -> Option<i128> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else if s.len() > 1 && s.starts_with('0') {
        i128::from_str_radix(&s[1..], 8).ok()?
    } else {
        s.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// A comment's text without its leading `*` decoration, as one paragraph per blank line.
fn clean_comment(body: &str) -> String {
    body.lines()
        .map(|l| l.trim().trim_start_matches('*').trim())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_comments_and_lines() {
        let t = lex("/* doc */ const A = 0x1F;\n% skipped\nB -7 010").unwrap();
        assert_eq!(t[0].tok, Tok::Ident("const".into()));
        assert_eq!(t[0].doc.as_deref(), Some("doc"));
        assert_eq!(t[3].tok, Tok::Num(31));
        assert_eq!(t[5].tok, Tok::Ident("B".into()));
        assert_eq!(t[5].line, 3);
        assert_eq!(t[6].tok, Tok::Num(-7));
        assert_eq!(t[7].tok, Tok::Num(8));
    }

    #[test]
    fn unterminated_comment_is_an_error() {
        assert!(lex("/* open").is_err());
    }
}
