//! Tokens of PREDA source: identifiers (keywords are contextual and left to the parser, since
//! PREDA code uses words such as `new` and `case` as names), number literals with their
//! `u8`…`u512`/`i8`…`i512`/`ib` suffixes, strings, the `…:hash`/`…:ed25519` literals and
//! punctuation. Never panics on arbitrary input.

use num_bigint::BigUint;

use super::error::{CompileError, Pos};

/// The suffix of an integer literal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntSuffix {
    /// No suffix: `int32` unless the context wants another integer type the value fits.
    None,
    /// `u` or `i` with an optional width (`u` alone is `uint32`, `i` alone `int32`).
    Fixed {
        /// `i` suffix.
        signed: bool,
        /// Bit width.
        bits: u16,
    },
    /// `ib`: a bigint.
    Big,
}

/// A token kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An identifier or keyword.
    Ident(String),
    /// An integer literal (value, suffix).
    Int(BigUint, IntSuffix),
    /// A string literal, unescaped.
    Str(String),
    /// `<chars>:hash`.
    HashLit(String),
    /// `<chars>:ed25519` or `<chars>:contract` (the text includes the tag).
    AddrLit(String),
    /// Punctuation or an operator.
    P(&'static str),
    /// End of input.
    Eof,
}

/// A token with where it starts and whether whitespace precedes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Kind.
    pub tok: Tok,
    /// Start position.
    pub pos: Pos,
    /// Byte offset of the start (for adjacency checks such as `>` `>`).
    pub offset: usize,
    /// Byte offset just past the end.
    pub end: usize,
}

/// Longest first, so `<<=` wins over `<<` and `<`. `>>` and `>` `>` are split by the parser
/// (a `>>` here would break `map<K, array<V>>`), so only `>=` and `>>=` combine `>`.
const PUNCT: &[&str] = &[
    "<<=", ">>=", "++", "--", "<<", "<=", ">=", "==", "!=", "&&", "||", "+=", "-=", "*=", "/=",
    "%=", "&=", "^=", "|=", "{", "}", "(", ")", "[", "]", ";", ",", ".", "@", "^", "?", ":", "+",
    "-", "*", "/", "%", "<", ">", "&", "|", "~", "!", "=",
];

const MAX_STRING: usize = 65_535;

struct Lexer<'a> {
    src: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
}

impl<'a> Lexer<'a> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self, k: usize) -> Option<u8> {
        self.src.get(self.i + k).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek(0)?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xC0 != 0x80 {
            // Columns count characters, not UTF-8 continuation bytes.
            self.col += 1;
        }
        Some(c)
    }

    fn skip_trivia(&mut self) -> Result<(), CompileError> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_ascii_whitespace() => {
                    self.bump();
                }
                (Some(b'/'), Some(b'/')) => {
                    while let Some(c) = self.peek(0) {
                        if c == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some(b'*'), Some(b'/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => {
                                self.bump();
                            }
                            (None, _) => {
                                return Err(CompileError::new(start, "unterminated /* comment"))
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek(0) {
            if c.is_ascii_alphanumeric() || c == b'_' {
                self.bump();
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.src[start..self.i]).into_owned()
    }

    /// The literal tag (`:hash`, `:ed25519` or `:contract`) starting at byte `at`, if any.
    fn tail_at(&self, at: usize) -> Option<&'static str> {
        [":hash", ":ed25519", ":contract"].into_iter().find(|tail| {
            let t = tail.as_bytes();
            self.src.get(at..at + t.len()) == Some(t)
                && !self
                    .src
                    .get(at + t.len())
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        })
    }

    /// After a word or number: `:hash`, `:ed25519` or `:contract` glued to it makes a literal.
    fn literal_tail(&mut self) -> Option<&'static str> {
        let tail = self.tail_at(self.i)?;
        for _ in 0..tail.len() {
            self.bump();
        }
        Some(tail)
    }

    /// PREDA's base32 literals may hold `@` (`ccnw…gh@qarf…:hash`): a run of letters,
    /// digits and `@` glued to a literal tag is one literal, not a word, a scope and a
    /// number. `None` (nothing consumed) for anything else, e.g. `relay@addr`.
    fn base32_literal(&mut self) -> Option<Tok> {
        let mut end = self.i;
        while self
            .src
            .get(end)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'@')
        {
            end += 1;
        }
        let run = &self.src[self.i..end];
        // `relay@ijhp…:ed25519 (…)` is a relay to a literal, not one literal.
        if !run.contains(&b'@') || run.starts_with(b"relay@") {
            return None;
        }
        let tail = self.tail_at(end)?;
        let start = self.i;
        while self.i < end {
            self.bump();
        }
        let text = String::from_utf8_lossy(&self.src[start..end]).into_owned();
        self.literal_tail();
        Some(if tail == ":hash" {
            Tok::HashLit(text)
        } else {
            Tok::AddrLit(format!("{text}{tail}"))
        })
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, CompileError> {
        let start = self.i;
        let (radix, digits_start) =
            if self.peek(0) == Some(b'0') && matches!(self.peek(1), Some(b'x') | Some(b'X')) {
                self.bump();
                self.bump();
                (16, self.i)
            } else {
                (10, self.i)
            };
        while let Some(c) = self.peek(0) {
            if (radix == 16 && c.is_ascii_hexdigit()) || c.is_ascii_digit() {
                self.bump();
            } else {
                break;
            }
        }
        let digits = std::str::from_utf8(&self.src[digits_start..self.i]).unwrap_or("");
        if radix == 10
            && self.peek(0) == Some(b'.')
            && self.peek(1).is_some_and(|c| c.is_ascii_digit())
        {
            return Err(CompileError::new(
                pos,
                "floating-point literals are not supported: every node must compute the same bits, and PREDA's float types have no bit-exact definition to agree on (use fixed-point arithmetic on integers or bigint)",
            ));
        }
        // A base32 hash/address literal may start with digits: take the rest of the word.
        let word_rest = self.word();
        if let Some(tail) = self.literal_tail() {
            let text = String::from_utf8_lossy(&self.src[start..self.i - tail.len()]).into_owned();
            return Ok(if tail == ":hash" {
                Tok::HashLit(text)
            } else {
                Tok::AddrLit(format!("{text}{tail}"))
            });
        }
        if digits.is_empty() {
            return Err(CompileError::new(pos, "hex literal without digits"));
        }
        let value = BigUint::parse_bytes(digits.as_bytes(), radix)
            .ok_or_else(|| CompileError::new(pos, "malformed number"))?;
        let suffix = match word_rest.as_str() {
            "" => IntSuffix::None,
            "ib" => IntSuffix::Big,
            s => {
                let (signed, width) = match s.as_bytes()[0] {
                    b'u' => (false, &s[1..]),
                    b'i' => (true, &s[1..]),
                    _ => {
                        return Err(CompileError::new(
                            pos,
                            format!(
                                "unknown number suffix `{s}` (expected u8…u512, i8…i512 or ib)"
                            ),
                        ))
                    }
                };
                let bits = match width {
                    "" => 32,
                    "8" => 8,
                    "16" => 16,
                    "32" => 32,
                    "64" => 64,
                    "128" => 128,
                    "256" => 256,
                    "512" => 512,
                    _ => {
                        return Err(CompileError::new(
                            pos,
                            format!(
                                "unknown number suffix `{s}` (expected u8…u512, i8…i512 or ib)"
                            ),
                        ))
                    }
                };
                IntSuffix::Fixed { signed, bits }
            }
        };
        Ok(Tok::Int(value, suffix))
    }

    fn string(&mut self, pos: Pos) -> Result<Tok, CompileError> {
        self.bump();
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(CompileError::new(pos, "unterminated string literal"));
            };
            match c {
                b'"' => break,
                b'\n' => return Err(CompileError::new(pos, "newline in string literal")),
                b'\\' => {
                    let e = self
                        .bump()
                        .ok_or_else(|| CompileError::new(pos, "unterminated string literal"))?;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'0' => out.push(0),
                        b'\\' => out.push(b'\\'),
                        b'"' => out.push(b'"'),
                        b'\'' => out.push(b'\''),
                        other => {
                            return Err(CompileError::new(
                                self.pos(),
                                format!("unknown escape `\\{}`", other as char),
                            ))
                        }
                    }
                }
                c => out.push(c),
            }
            if out.len() > MAX_STRING {
                return Err(CompileError::new(
                    pos,
                    "string literal longer than 65535 bytes",
                ));
            }
        }
        String::from_utf8(out)
            .map(Tok::Str)
            .map_err(|_| CompileError::new(pos, "string literal is not valid UTF-8"))
    }

    fn next(&mut self) -> Result<Token, CompileError> {
        self.skip_trivia()?;
        let pos = self.pos();
        let offset = self.i;
        let Some(c) = self.peek(0) else {
            return Ok(Token {
                tok: Tok::Eof,
                pos,
                offset,
                end: offset,
            });
        };
        let tok = if let Some(lit) = c
            .is_ascii_alphanumeric()
            .then(|| self.base32_literal())
            .flatten()
        {
            lit
        } else if c.is_ascii_digit() {
            self.number(pos)?
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let w = self.word();
            match self.literal_tail() {
                Some(":hash") => Tok::HashLit(w),
                Some(tail) => Tok::AddrLit(format!("{w}{tail}")),
                None => Tok::Ident(w),
            }
        } else if c == b'"' {
            self.string(pos)?
        } else {
            let rest = &self.src[self.i..];
            let Some(p) = PUNCT.iter().find(|p| rest.starts_with(p.as_bytes())) else {
                let ch = std::str::from_utf8(&self.src[self.i..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| format!("byte 0x{c:02x}"));
                return Err(CompileError::new(
                    pos,
                    format!("unexpected character `{ch}`"),
                ));
            };
            for _ in 0..p.len() {
                self.bump();
            }
            Tok::P(p)
        };
        Ok(Token {
            tok,
            pos,
            offset,
            end: self.i,
        })
    }
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub fn lex(src: &str) -> Result<Vec<Token>, CompileError> {
    let mut lx = Lexer {
        src: src.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    loop {
        let t = lx.next()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn base32_literals_with_at_signs_are_one_literal() {
        // PREDA's language spec, 4.1.2 and 5.2: a hash literal whose base32 holds `@`.
        let h = "ccnwe8x9sig7gb98zkb6gh@qarffhvf6c3ok9433@tz9ne4mb6qi";
        assert_eq!(
            kinds(&format!("x = {h}:hash;")),
            [
                Tok::Ident("x".into()),
                Tok::P("="),
                Tok::HashLit(h.into()),
                Tok::P(";"),
                Tok::Eof
            ]
        );
        let a = "9zz@ffgwr07yq323axszgxbr2qp9azzbyjjm844s90z8ack63s6hrch6";
        assert_eq!(
            kinds(&format!("{a}:ed25519"))[0],
            Tok::AddrLit(format!("{a}:ed25519"))
        );
        // A relay target is not a literal.
        let t = kinds("relay@addr f(1);");
        assert_eq!(t[0], Tok::Ident("relay".into()));
        assert_eq!(t[1], Tok::P("@"));
        assert_eq!(t[2], Tok::Ident("addr".into()));
        // Nor is the relay keyword part of a literal it relays to (PREDA's relay_lambda.prd).
        let a = "ijhp8we9e57t4gf9ba4hyv343yed5r66jr6trr3vwa46rda6ykow6kobaz";
        let t = kinds(&format!("relay@{a}:ed25519 (^i) {{ }}"));
        assert_eq!(
            t[..3],
            [
                Tok::Ident("relay".into()),
                Tok::P("@"),
                Tok::AddrLit(format!("{a}:ed25519"))
            ]
        );
    }

    #[test]
    fn numbers_with_suffixes() {
        let t = kinds("1 0u 255u8 -1i8 0x80000000u32 10ib 0xffib");
        assert_eq!(t[0], Tok::Int(1u32.into(), IntSuffix::None));
        assert_eq!(
            t[1],
            Tok::Int(
                0u32.into(),
                IntSuffix::Fixed {
                    signed: false,
                    bits: 32
                }
            )
        );
        assert_eq!(
            t[2],
            Tok::Int(
                255u32.into(),
                IntSuffix::Fixed {
                    signed: false,
                    bits: 8
                }
            )
        );
        assert_eq!(t[3], Tok::P("-"));
        assert_eq!(
            t[5],
            Tok::Int(
                0x8000_0000u32.into(),
                IntSuffix::Fixed {
                    signed: false,
                    bits: 32
                }
            )
        );
        assert_eq!(t[6], Tok::Int(10u32.into(), IntSuffix::Big));
        assert_eq!(t[7], Tok::Int(255u32.into(), IntSuffix::Big));
    }

    #[test]
    fn positions_are_line_and_column() {
        let t = lex("a\n  /* x\n */ bb // c\n\"s\"").unwrap();
        assert_eq!((t[0].pos.line, t[0].pos.col), (1, 1));
        assert_eq!((t[1].pos.line, t[1].pos.col), (3, 5));
        assert_eq!(t[2].tok, Tok::Str("s".into()));
        assert_eq!((t[2].pos.line, t[2].pos.col), (4, 1));
    }

    #[test]
    fn greater_than_is_never_merged_into_shift() {
        assert_eq!(
            kinds("a>>b >>= c >= d"),
            vec![
                Tok::Ident("a".into()),
                Tok::P(">"),
                Tok::P(">"),
                Tok::Ident("b".into()),
                Tok::P(">>="),
                Tok::Ident("c".into()),
                Tok::P(">="),
                Tok::Ident("d".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn literals_and_errors() {
        assert!(matches!(kinds("abc:hash")[0], Tok::HashLit(_)));
        assert!(matches!(kinds("9abc:ed25519")[0], Tok::AddrLit(_)));
        let e = lex("x = 1.5;").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (1, 5));
        assert!(lex("\"abc").is_err());
        assert!(lex("/* x").is_err());
        assert!(lex("a # b").is_err());
        assert!(lex("3u7").is_err());
    }
}
