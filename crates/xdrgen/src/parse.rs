//! The XDR language (RFC 4506 section 6.3) parsed into definitions, plus the RPC
//! `program` blocks of RFC 5531 section 12 (whose numbers become constants).
use crate::lex::{Tok, Token};
use crate::GenError;

/// A constant or a number, as written where a value is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A literal.
    Num(i128),
    /// The name of a constant or an enum value.
    Name(String),
}

/// The base type of a declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeSpec {
    /// `int`
    Int,
    /// `unsigned int` (or `unsigned`)
    UInt,
    /// `hyper`
    Hyper,
    /// `unsigned hyper`
    UHyper,
    /// `bool`
    Bool,
    /// `float`
    Float,
    /// `double`
    Double,
    /// A type defined elsewhere in the file.
    Named(String),
}

/// The shape of a declaration (RFC 4506 section 6.3, `declaration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// `void`
    Void,
    /// `T name`
    Plain(TypeSpec),
    /// `T *name` (optional data)
    Optional(TypeSpec),
    /// `T name[N]`
    FixedArray(TypeSpec, Value),
    /// `T name<N>` or `T name<>`
    VarArray(TypeSpec, Option<Value>),
    /// `opaque name[N]`
    FixedOpaque(Value),
    /// `opaque name<N>` or `opaque name<>`
    VarOpaque(Option<Value>),
    /// `string name<N>` or `string name<>`
    String(Option<Value>),
}

/// A declaration: a name and its shape. `void` has an empty name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decl {
    /// The declared name.
    pub name: String,
    /// Its type and shape.
    pub shape: Shape,
}

/// One `case` arm of a union: its labels (more than one when cases fall through)
/// and what follows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    /// The case values.
    pub labels: Vec<Value>,
    /// The arm's declaration (`void` for none).
    pub decl: Decl,
}

/// A procedure of an RPC program version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// Its name.
    pub name: String,
    /// Its number.
    pub number: Value,
}

/// A version of an RPC program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its name.
    pub name: String,
    /// Its number.
    pub number: Value,
    /// Its procedures.
    pub procs: Vec<Procedure>,
}

/// What a top-level definition defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `const NAME = value;`
    Const(Value),
    /// `typedef declaration;` (the declaration's name is the new type's)
    Typedef(Decl),
    /// `enum name { A = 1, ... };`
    Enum(Vec<(String, Value)>),
    /// `struct name { declarations };`
    Struct(Vec<Decl>),
    /// `union name switch (discriminant) { arms [default] };`
    Union {
        /// The discriminant's declaration.
        discr: Decl,
        /// The `case` arms in order.
        arms: Vec<Arm>,
        /// The `default` arm, if there is one.
        default: Option<Decl>,
    },
    /// `program NAME { version ... } = number;`
    Program {
        /// Its number.
        number: Value,
        /// Its versions.
        versions: Vec<Version>,
    },
}

/// One top-level definition with the comment that preceded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The defined name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// The comment just before it in the source.
    pub doc: Option<String>,
}

/// Parses a whole specification.
pub(crate) fn parse(tokens: &[Token]) -> Result<Vec<Definition>, GenError> {
    let mut p = Parser { t: tokens, i: 0 };
    let mut defs = Vec::new();
    while p.i < p.t.len() {
        defs.push(p.definition()?);
    }
    Ok(defs)
}

struct Parser<'a> {
    t: &'a [Token],
    i: usize,
}

impl Parser<'_> {
    fn line(&self) -> usize {
        self.t.get(self.i).or(self.t.last()).map_or(0, |t| t.line)
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, GenError> {
        Err(GenError::Syntax {
            line: self.line(),
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i).map(|t| &t.tok)
    }

    fn next(&mut self) -> Result<Tok, GenError> {
        match self.t.get(self.i) {
            Some(t) => {
                self.i += 1;
                Ok(t.tok.clone())
            }
            None => self.err("unexpected end of input"),
        }
    }

    fn ident(&mut self) -> Result<String, GenError> {
        match self.next()? {
            Tok::Ident(s) => Ok(s),
            t => self.err(format!("expected a name, found {t:?}")),
        }
    }

    fn punct(&mut self, c: char) -> Result<(), GenError> {
        match self.next()? {
            Tok::Punct(p) if p == c => Ok(()),
            t => self.err(format!("expected {c:?}, found {t:?}")),
        }
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == w)
    }

    fn value(&mut self) -> Result<Value, GenError> {
        match self.next()? {
            Tok::Num(n) => Ok(Value::Num(n)),
            Tok::Ident(s) => Ok(Value::Name(s)),
            t => self.err(format!("expected a value, found {t:?}")),
        }
    }

    fn definition(&mut self) -> Result<Definition, GenError> {
        let doc = self.t[self.i].doc.clone();
        let word = self.ident()?;
        let (name, kind) = match word.as_str() {
            "const" => {
                let name = self.ident()?;
                self.punct('=')?;
                (name, Kind::Const(self.value()?))
            }
            "typedef" => {
                let d = self.declaration()?;
                (d.name.clone(), Kind::Typedef(d))
            }
            "enum" => {
                let name = self.ident()?;
                (name, Kind::Enum(self.enum_body()?))
            }
            "struct" => {
                let name = self.ident()?;
                (name, Kind::Struct(self.struct_body()?))
            }
            "union" => {
                let name = self.ident()?;
                (name, self.union_body()?)
            }
            "program" => {
                let name = self.ident()?;
                (name, self.program_body()?)
            }
            w => return self.err(format!("expected a definition, found {w:?}")),
        };
        self.punct(';')?;
        Ok(Definition { name, kind, doc })
    }

    fn enum_body(&mut self) -> Result<Vec<(String, Value)>, GenError> {
        self.punct('{')?;
        let mut vs = Vec::new();
        loop {
            let n = self.ident()?;
            self.punct('=')?;
            vs.push((n, self.value()?));
            if self.is_punct(',') {
                self.i += 1;
                continue;
            }
            self.punct('}')?;
            return Ok(vs);
        }
    }

    fn struct_body(&mut self) -> Result<Vec<Decl>, GenError> {
        self.punct('{')?;
        let mut fields = Vec::new();
        while !self.is_punct('}') {
            fields.push(self.declaration()?);
            self.punct(';')?;
        }
        self.punct('}')?;
        Ok(fields)
    }

    fn union_body(&mut self) -> Result<Kind, GenError> {
        if self.ident()? != "switch" {
            return self.err("expected switch");
        }
        self.punct('(')?;
        let discr = self.declaration()?;
        self.punct(')')?;
        self.punct('{')?;
        let mut arms = Vec::new();
        let mut default = None;
        let mut labels = Vec::new();
        while !self.is_punct('}') {
            if self.is_word("case") {
                self.i += 1;
                labels.push(self.value()?);
                self.punct(':')?;
                if self.is_word("case") || self.is_word("default") {
                    continue; // falls through to the next label
                }
                let decl = self.declaration()?;
                self.punct(';')?;
                arms.push(Arm {
                    labels: std::mem::take(&mut labels),
                    decl,
                });
            } else if self.is_word("default") {
                if !labels.is_empty() {
                    return self.err("case falls through into default");
                }
                self.i += 1;
                self.punct(':')?;
                default = Some(self.declaration()?);
                self.punct(';')?;
            } else {
                return self.err("expected case or default");
            }
        }
        self.punct('}')?;
        if !labels.is_empty() {
            return self.err("case without a declaration");
        }
        Ok(Kind::Union {
            discr,
            arms,
            default,
        })
    }

    fn program_body(&mut self) -> Result<Kind, GenError> {
        self.punct('{')?;
        let mut versions = Vec::new();
        while !self.is_punct('}') {
            if self.ident()? != "version" {
                return self.err("expected version");
            }
            let name = self.ident()?;
            self.punct('{')?;
            let mut procs = Vec::new();
            while !self.is_punct('}') {
                self.type_spec()?; // result type (void included)
                let pname = self.ident()?;
                self.punct('(')?;
                while !self.is_punct(')') {
                    self.next()?;
                }
                self.punct(')')?;
                self.punct('=')?;
                procs.push(Procedure {
                    name: pname,
                    number: self.value()?,
                });
                self.punct(';')?;
            }
            self.punct('}')?;
            self.punct('=')?;
            let number = self.value()?;
            self.punct(';')?;
            versions.push(Version {
                name,
                number,
                procs,
            });
        }
        self.punct('}')?;
        self.punct('=')?;
        Ok(Kind::Program {
            number: self.value()?,
            versions,
        })
    }

    fn type_spec(&mut self) -> Result<TypeSpec, GenError> {
        let w = self.ident()?;
        Ok(match w.as_str() {
            "int" => TypeSpec::Int,
            "hyper" => TypeSpec::Hyper,
            "bool" => TypeSpec::Bool,
            "float" => TypeSpec::Float,
            "double" => TypeSpec::Double,
            "void" => TypeSpec::Named("void".into()),
            "unsigned" => {
                if self.is_word("int") {
                    self.i += 1;
                    TypeSpec::UInt
                } else if self.is_word("hyper") {
                    self.i += 1;
                    TypeSpec::UHyper
                } else {
                    TypeSpec::UInt
                }
            }
            "struct" | "enum" | "union" => TypeSpec::Named(self.ident()?),
            _ => TypeSpec::Named(w),
        })
    }

    fn bound(&mut self, close: char) -> Result<Option<Value>, GenError> {
        if self.is_punct(close) {
            self.i += 1;
            return Ok(None);
        }
        let v = self.value()?;
        self.punct(close)?;
        Ok(Some(v))
    }

    fn declaration(&mut self) -> Result<Decl, GenError> {
        if self.is_word("void") {
            self.i += 1;
            return Ok(Decl {
                name: String::new(),
                shape: Shape::Void,
            });
        }
        if self.is_word("opaque") || self.is_word("string") {
            let is_string = self.ident()? == "string";
            let name = self.ident()?;
            let shape = match (self.next()?, is_string) {
                (Tok::Punct('['), false) => match self.bound(']')? {
                    Some(n) => Shape::FixedOpaque(n),
                    None => return self.err("fixed opaque needs a size"),
                },
                (Tok::Punct('<'), false) => Shape::VarOpaque(self.bound('>')?),
                (Tok::Punct('<'), true) => Shape::String(self.bound('>')?),
                _ => return self.err("opaque and string need [N] or <N>"),
            };
            return Ok(Decl { name, shape });
        }
        let ty = self.type_spec()?;
        if self.is_punct('*') {
            self.i += 1;
            return Ok(Decl {
                name: self.ident()?,
                shape: Shape::Optional(ty),
            });
        }
        let name = self.ident()?;
        let shape = if self.is_punct('[') {
            self.i += 1;
            match self.bound(']')? {
                Some(n) => Shape::FixedArray(ty, n),
                None => return self.err("fixed array needs a size"),
            }
        } else if self.is_punct('<') {
            self.i += 1;
            Shape::VarArray(ty, self.bound('>')?)
        } else {
            Shape::Plain(ty)
        };
        Ok(Decl { name, shape })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lex::lex;

    fn one(src: &str) -> Definition {
        let mut d = parse(&lex(src).unwrap()).unwrap();
        assert_eq!(d.len(), 1);
        d.remove(0)
    }

    #[test]
    fn union_with_fallthrough_and_default() {
        let d = one(
            "union u switch (e k) { case A: case B: int x; case C: void; default: opaque o<4>; };",
        );
        let Kind::Union {
            discr,
            arms,
            default,
        } = d.kind
        else {
            panic!("not a union")
        };
        assert_eq!(discr.shape, Shape::Plain(TypeSpec::Named("e".into())));
        assert_eq!(arms.len(), 2);
        assert_eq!(
            arms[0].labels,
            vec![Value::Name("A".into()), Value::Name("B".into())]
        );
        assert_eq!(arms[1].decl.shape, Shape::Void);
        assert_eq!(
            default.unwrap().shape,
            Shape::VarOpaque(Some(Value::Num(4)))
        );
    }

    #[test]
    fn struct_shapes() {
        let d = one(
            "struct s { unsigned hyper a; T *next; int f[3]; T v<>; string s<N>; opaque h[8]; };",
        );
        let Kind::Struct(f) = d.kind else {
            panic!("not a struct")
        };
        assert_eq!(f[0].shape, Shape::Plain(TypeSpec::UHyper));
        assert_eq!(f[1].shape, Shape::Optional(TypeSpec::Named("T".into())));
        assert_eq!(f[2].shape, Shape::FixedArray(TypeSpec::Int, Value::Num(3)));
        assert_eq!(
            f[3].shape,
            Shape::VarArray(TypeSpec::Named("T".into()), None)
        );
        assert_eq!(f[4].shape, Shape::String(Some(Value::Name("N".into()))));
        assert_eq!(f[5].shape, Shape::FixedOpaque(Value::Num(8)));
    }

    #[test]
    fn program_and_errors() {
        let d = one("program P { version V { void NUL(void) = 0; R C(A) = 1; } = 4; } = 100003;");
        let Kind::Program { number, versions } = d.kind else {
            panic!("not a program")
        };
        assert_eq!(number, Value::Num(100003));
        assert_eq!(versions[0].procs[1].name, "C");
        assert!(parse(&lex("struct s { int a }").unwrap()).is_err());
        assert!(parse(&lex("union u switch (int d) { case 1: };").unwrap()).is_err());
    }
}
