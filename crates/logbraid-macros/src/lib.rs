//! The procedural half of logbraid's logging macros (`logbraid::info!` and
//! the others, which call [`deferred!`] with the crate's path and the level).
//!
//! The format string is split at compile time into what the writer thread
//! formats later: every placeholder becomes a value of its own, and so does
//! every width or precision taken from an argument. The call site encodes
//! those values raw (integers, floats, `bool`, `char` and strings copied,
//! anything else formatted at once with its placeholder's spec); the writer
//! decodes them with their types and formats them with `format_args!`, so
//! the bytes are those `format!` gives. Inline captures (`{name}`) become
//! arguments here, which a `macro_rules!` macro could not do: it cannot
//! look inside a string.
//!
//! Input: `[crate path] [level expression] options fields format args`,
//! where options are `target: "literal",` and `logger: expr,` (either,
//! both, any order), fields are `key = value, ...;` and the rest is what
//! `format!` takes.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Token};

/// See the crate documentation.
#[proc_macro]
pub fn deferred(input: TokenStream) -> TokenStream {
    match syn::parse::<Call>(input) {
        Ok(call) => call.expand().into(),
        Err(e) => e.to_compile_error().into(),
    }
}

struct Call {
    krate: Tokens,
    level: Tokens,
    target: Option<Expr>,
    logger: Option<Expr>,
    fields: Vec<(String, Expr)>,
    /// The format string: a literal, or a macro call that expands to one
    /// (`concat!`), which is formatted whole at the call.
    format: Expr,
    positional: Vec<Expr>,
    named: Vec<(Ident, Expr)>,
}

fn bracketed(input: ParseStream<'_>) -> syn::Result<Tokens> {
    let content;
    syn::bracketed!(content in input);
    content.parse()
}

/// `ident =` but not `ident ==`.
fn at_assignment(input: ParseStream<'_>) -> bool {
    input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==])
}

impl Parse for Call {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = bracketed(input)?;
        let level = bracketed(input)?;
        let mut target = None;
        let mut logger = None;
        while input.peek(Ident) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
            let key: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            let value: Expr = input.parse()?;
            input.parse::<Token![,]>()?;
            let slot =
                match key.to_string().as_str() {
                    "target" => &mut target,
                    "logger" => &mut logger,
                    _ => return Err(syn::Error::new(
                        key.span(),
                        "expected `target:` or `logger:` before the fields and the format string",
                    )),
                };
            if slot.replace(value).is_some() {
                return Err(syn::Error::new(key.span(), "given twice"));
            }
        }
        let mut fields = Vec::new();
        // `name!(...)` starts the format string (`concat!`), not a field.
        let at_format = input.peek(LitStr) || (input.peek(Ident) && input.peek2(Token![!]));
        if !at_format {
            loop {
                let key = if input.peek(LitStr) {
                    input.parse::<LitStr>()?.value()
                } else {
                    let key: Ident = input.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "expected a format string, or fields `key = value, ...;` before it",
                        )
                    })?;
                    key.to_string().trim_start_matches("r#").to_string()
                };
                input.parse::<Token![=]>()?;
                fields.push((key, input.parse()?));
                if input.parse::<Option<Token![;]>>()?.is_some() {
                    break;
                }
                input.parse::<Token![,]>().map_err(|e| {
                    syn::Error::new(e.span(), "fields end with `;` before the format string")
                })?;
            }
        }
        let format: Expr = input.parse()?;
        if !matches!(&format, Expr::Lit(_) | Expr::Macro(_)) {
            return Err(syn::Error::new_spanned(
                format,
                "expected a format string (a literal, or a macro such as concat! that gives one)",
            ));
        }
        let mut positional = Vec::new();
        let mut named: Vec<(Ident, Expr)> = Vec::new();
        while input.parse::<Option<Token![,]>>()?.is_some() {
            if input.is_empty() {
                break;
            }
            if at_assignment(input) {
                let name: Ident = input.parse()?;
                input.parse::<Token![=]>()?;
                named.push((name, input.parse()?));
            } else if named.is_empty() {
                positional.push(input.parse()?);
            } else {
                return Err(input.error("positional arguments come before named ones"));
            }
        }
        if !input.is_empty() {
            return Err(input.error("expected `,`"));
        }
        Ok(Call {
            krate,
            level,
            target,
            logger,
            fields,
            format,
            positional,
            named,
        })
    }
}

/// Which argument a placeholder or a count names.
#[derive(Debug, Clone, PartialEq)]
enum ArgRef {
    Next,
    Index(usize),
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Count {
    Lit(usize),
    Arg(ArgRef),
}

#[derive(Debug, Clone, PartialEq)]
struct Spec {
    /// Fill, alignment, sign, `#` and `0`, as written.
    head: String,
    width: Option<Count>,
    precision: Option<Count>,
    /// The trait: `""`, `"?"`, `"x"`, `"x?"`, `"e"`, `"p"`...
    ty: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Hole { arg: ArgRef, spec: Spec },
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.at + n).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn integer(&mut self) -> Option<usize> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    fn identifier(&mut self) -> Option<String> {
        let start = self.at;
        if !self
            .peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            return None;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            self.at += 1;
        }
        Some(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn argument(&mut self) -> Option<ArgRef> {
        match self.peek()? {
            b'0'..=b'9' => self.integer().map(ArgRef::Index),
            _ => self.identifier().map(ArgRef::Name),
        }
    }

    /// `integer`, `integer$` or `identifier$`; nothing (and the cursor
    /// left alone) otherwise.
    fn count(&mut self) -> Option<Count> {
        let start = self.at;
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            let n = self.integer()?;
            if self.eat(b'$') {
                return Some(Count::Arg(ArgRef::Index(n)));
            }
            return Some(Count::Lit(n));
        }
        if let Some(name) = self.identifier() {
            if self.eat(b'$') {
                return Some(Count::Arg(ArgRef::Name(name)));
            }
        }
        self.at = start;
        None
    }
}

/// Splits a format string (its value, escapes resolved by the compiler)
/// into literal text and placeholders. `None` for anything it does not
/// know: the caller then formats the whole message at the call.
fn parse_format(s: &str) -> Option<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut c = Cursor {
        s: s.as_bytes(),
        at: 0,
    };
    while let Some(b) = c.peek() {
        match b {
            b'{' if c.peek_at(1) == Some(b'{') => {
                lit.push('{');
                c.at += 2;
            }
            b'}' if c.peek_at(1) == Some(b'}') => {
                lit.push('}');
                c.at += 2;
            }
            b'}' => return None,
            b'{' => {
                c.at += 1;
                if !lit.is_empty() {
                    pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                }
                let arg = if matches!(c.peek(), Some(b':' | b'}')) {
                    ArgRef::Next
                } else {
                    c.argument()?
                };
                let spec = if c.eat(b':') {
                    parse_spec(&mut c)?
                } else {
                    Spec {
                        head: String::new(),
                        width: None,
                        precision: None,
                        ty: String::new(),
                    }
                };
                if !c.eat(b'}') {
                    return None;
                }
                pieces.push(Piece::Hole { arg, spec });
            }
            _ => {
                let ch = s[c.at..].chars().next()?;
                lit.push(ch);
                c.at += ch.len_utf8();
            }
        }
    }
    if !lit.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Some(pieces)
}

fn parse_spec(c: &mut Cursor<'_>) -> Option<Spec> {
    let start = c.at;
    let rest = std::str::from_utf8(&c.s[c.at..]).ok()?;
    let mut chars = rest.chars();
    let first = chars.next()?;
    let second = chars.next();
    if matches!(second, Some('<' | '^' | '>')) {
        c.at += first.len_utf8() + 1;
    } else if matches!(first, '<' | '^' | '>') {
        c.at += 1;
    }
    if matches!(c.peek(), Some(b'+' | b'-')) {
        c.at += 1;
    }
    c.eat(b'#');
    if c.peek() == Some(b'0') && c.peek_at(1) != Some(b'$') {
        c.at += 1;
    }
    let head = String::from_utf8(c.s[start..c.at].to_vec()).ok()?;
    let width = c.count();
    let precision = if c.eat(b'.') {
        if c.eat(b'*') {
            Some(Count::Arg(ArgRef::Next))
        } else {
            Some(c.count()?)
        }
    } else {
        None
    };
    let ty_start = c.at;
    if let Some(b'x' | b'X') = c.peek() {
        if c.peek_at(1) == Some(b'?') {
            c.at += 2;
        }
    }
    if c.at == ty_start && !c.eat(b'?') {
        c.identifier();
    }
    let ty = String::from_utf8(c.s[ty_start..c.at].to_vec()).ok()?;
    if !matches!(
        ty.as_str(),
        "" | "?" | "x?" | "X?" | "x" | "X" | "o" | "b" | "e" | "E" | "p"
    ) {
        return None;
    }
    Some(Spec {
        head,
        width,
        precision,
        ty,
    })
}

/// Where a value comes from: one of the bindings made at the call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Positional(usize),
    Named(usize),
    Capture(usize),
}

/// One value encoded at the call and decoded by the writer.
struct Slot {
    source: Source,
    /// `None` for a width or precision (a `usize`), else the placeholder's
    /// spec as it formats the value eagerly: `{0:spec}` with the width at
    /// 1 and the precision after it.
    eager: Option<(String, Vec<Source>)>,
    /// `{:p}` formats the address of what was given: always at the call.
    always_eager: bool,
}

struct Plan {
    /// The format string the writer uses: each placeholder names its slot.
    format: String,
    /// When every placeholder is a bare `{}`: the literal text and the
    /// slots in order, which the writer appends without `core::fmt`.
    bare: Option<Vec<Bare>>,
    slots: Vec<Slot>,
    captures: Vec<String>,
}

/// A piece of a format string whose placeholders are all bare.
enum Bare {
    Lit(String),
    Slot(usize),
}

impl Call {
    fn resolve(&self, arg: &ArgRef, next: &mut usize, captures: &mut Vec<String>) -> Source {
        let index = |i: usize| {
            if i < self.positional.len() {
                Source::Positional(i)
            } else {
                Source::Named(i - self.positional.len())
            }
        };
        match arg {
            ArgRef::Next => {
                *next += 1;
                index(*next - 1)
            }
            ArgRef::Index(i) => index(*i),
            ArgRef::Name(name) => {
                if let Some(j) = self.named.iter().position(|(n, _)| n == name) {
                    return Source::Named(j);
                }
                let k = match captures.iter().position(|c| c == name) {
                    Some(k) => k,
                    None => {
                        captures.push(name.clone());
                        captures.len() - 1
                    }
                };
                Source::Capture(k)
            }
        }
    }

    fn plan(&self) -> Option<Plan> {
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) = &self.format
        else {
            return None;
        };
        let pieces = parse_format(&lit.value())?;
        let mut format = String::new();
        let mut slots = Vec::new();
        let mut captures = Vec::new();
        let mut next = 0;
        let mut bare = Some(Vec::new());
        for piece in &pieces {
            let (arg, spec) = match piece {
                Piece::Lit(text) => {
                    format.push_str(&text.replace('{', "{{").replace('}', "}}"));
                    if let Some(b) = &mut bare {
                        b.push(Bare::Lit(text.clone()));
                    }
                    continue;
                }
                Piece::Hole { arg, spec } => (arg, spec),
            };
            let is_bare = spec.head.is_empty()
                && spec.ty.is_empty()
                && spec.width.is_none()
                && spec.precision.is_none();
            let count = |c: &Option<Count>,
                         slots: &mut Vec<Slot>,
                         captures: &mut Vec<String>,
                         next: &mut usize| match c {
                Some(Count::Arg(a)) => {
                    let source = self.resolve(a, next, captures);
                    slots.push(Slot {
                        source,
                        eager: None,
                        always_eager: false,
                    });
                    Some(Ok((slots.len() - 1, source)))
                }
                Some(Count::Lit(n)) => Some(Err(*n)),
                None => None,
            };
            let width = count(&spec.width, &mut slots, &mut captures, &mut next);
            let precision = count(&spec.precision, &mut slots, &mut captures, &mut next);
            let source = self.resolve(arg, &mut next, &mut captures);
            // The writer's placeholder, and the eager one of the call.
            let mut writer = format!("{{{}:{}", slots.len(), spec.head);
            let mut eager = format!("{{0:{}", spec.head);
            let mut eager_counts = Vec::new();
            for (part, prefix) in [(&width, ""), (&precision, ".")] {
                match part {
                    Some(Ok((slot, src))) => {
                        writer.push_str(&format!("{prefix}{slot}$"));
                        eager_counts.push(*src);
                        eager.push_str(&format!("{prefix}{}$", eager_counts.len()));
                    }
                    Some(Err(n)) => {
                        writer.push_str(&format!("{prefix}{n}"));
                        eager.push_str(&format!("{prefix}{n}"));
                    }
                    None => {}
                }
            }
            writer.push_str(&spec.ty);
            writer.push('}');
            eager.push_str(&spec.ty);
            eager.push('}');
            format.push_str(&writer);
            match &mut bare {
                Some(b) if is_bare => b.push(Bare::Slot(slots.len())),
                _ => bare = None,
            }
            slots.push(Slot {
                source,
                eager: Some((eager, eager_counts)),
                always_eager: spec.ty == "p",
            });
        }
        Some(Plan {
            format,
            bare,
            slots,
            captures,
        })
    }

    fn expand(&self) -> Tokens {
        let krate = &self.krate;
        let level = &self.level;
        let p = quote!(#krate::__private);
        let site = Span::mixed_site();
        let lit = &self.format;
        let lit_span = syn::spanned::Spanned::span(lit);
        let target = match &self.target {
            Some(t) => quote!(#t),
            None => quote!(::core::module_path!()),
        };
        let check_args = {
            let pos = &self.positional;
            let named = self.named.iter().map(|(n, e)| quote!(#n = #e));
            quote!(#(, #pos)* #(, #named)*)
        };
        let enabled = match &self.logger {
            Some(l) => quote_spanned!(site=> #p::enabled_in(&(#l), __lb_level, #target)),
            None => quote_spanned!(site=> #p::enabled(__lb_level, #target)),
        };

        let positional: Vec<Ident> = (0..self.positional.len())
            .map(|i| format_ident!("__lb_p{}", i, span = site))
            .collect();
        let named: Vec<Ident> = (0..self.named.len())
            .map(|i| format_ident!("__lb_n{}", i, span = site))
            .collect();
        let field_names: Vec<Ident> = (0..self.fields.len())
            .map(|i| format_ident!("__lb_f{}", i, span = site))
            .collect();
        let field_exprs = self.fields.iter().map(|(_, e)| e);
        let field_keys: Vec<&String> = self.fields.iter().map(|(k, _)| k).collect();
        let positional_exprs = &self.positional;
        let named_exprs = self.named.iter().map(|(_, e)| e);

        // A format string the plan does not know is formatted whole at the
        // call: the same bytes, only not deferred.
        let plan = self.plan().unwrap_or_else(|| Plan {
            format: "{0}".to_string(),
            bare: None,
            slots: Vec::new(),
            captures: Vec::new(),
        });
        let whole = plan.slots.is_empty() && plan.format == "{0}";
        let bare = if whole { None } else { plan.bare.as_ref() };
        let capture_names: Vec<Ident> = (0..plan.captures.len())
            .map(|i| format_ident!("__lb_c{}", i, span = site))
            .collect();
        let capture_idents = plan.captures.iter().map(|c| Ident::new(c, lit_span));
        let binding = |s: Source| match s {
            Source::Positional(i) => positional[i].clone(),
            Source::Named(j) => named[j].clone(),
            Source::Capture(k) => capture_names[k].clone(),
        };

        let n = if whole { 1 } else { plan.slots.len() };
        let slot_names: Vec<Ident> = (0..n)
            .map(|i| format_ident!("__lb_s{}", i, span = site))
            .collect();
        let kinds: Vec<Ident> = (0..n)
            .map(|i| format_ident!("K{}", i, span = site))
            .collect();
        let values: Vec<Ident> = (0..n)
            .map(|i| format_ident!("__lb_v{}", i, span = site))
            .collect();
        // Widths and precisions are `usize`, as `format_args!` wants them.
        let decodes = values.iter().zip(&kinds).enumerate().map(|(i, (v, k))| {
            if plan.slots.get(i).is_some_and(|s| s.eager.is_none()) {
                quote_spanned!(site=> let #v = <usize as #p::Decode>::decode(&mut __lb_r);)
            } else {
                quote_spanned!(site=> let #v = #p::Decoded::<#k>::read(&mut __lb_r);)
            }
        });
        let mut picks = Vec::new();
        let mut encodes = Vec::new();
        if whole {
            // The arguments were evaluated once, into the bindings.
            let names = self.named.iter().map(|(n, _)| n);
            picks.push(quote_spanned!(site=> let __lb_s0 = #p::EagerArg;));
            encodes.push(quote_spanned!(site=>
                #p::Arg::encode(&__lb_s0, __lb_args, |__lb_w: &mut ::std::vec::Vec<u8>| {
                    #p::write_fmt(__lb_w, ::core::format_args!(
                        #lit #(, *#positional)* #(, #names = *#named)*
                    ))
                });
            ));
        }
        for (i, slot) in plan.slots.iter().enumerate() {
            let s = &slot_names[i];
            let b = binding(slot.source);
            match &slot.eager {
                None => {
                    picks.push(quote_spanned!(site=> let #s = #p::RawArg::<usize>(#b);));
                    encodes.push(quote_spanned!(site=>
                        #p::Arg::encode(&#s, __lb_args, |_: &mut ::std::vec::Vec<u8>| {});
                    ));
                }
                Some((spec, counts)) => {
                    let spec = LitStr::new(spec, lit_span);
                    let counts = counts.iter().map(|c| binding(*c));
                    if slot.always_eager {
                        picks.push(quote_spanned!(site=> let #s = #p::EagerArg;));
                    } else {
                        picks.push(quote_spanned!(site=>
                            let #s = {
                                #[allow(unused_imports)]
                                use #p::{ViaEager as _, ViaRaw as _};
                                (&#p::Sel(#b)).__lb_pick()
                            };
                        ));
                    }
                    encodes.push(quote_spanned!(site=>
                        #p::Arg::encode(&#s, __lb_args, |__lb_w: &mut ::std::vec::Vec<u8>| {
                            #p::write_fmt(__lb_w, ::core::format_args!(#spec, *#b #(, *#counts)*))
                        });
                    ));
                }
            }
        }
        let field_pushes = field_names.iter().zip(&field_keys).map(|(f, k)| {
            quote_spanned!(site=> {
                #[allow(unused_imports)]
                use #p::{ViaEager as _, ViaRaw as _};
                #p::Arg::field(&(&#p::Sel(#f)).__lb_pick(), __lb_fields, #k, |__lb_fb: &mut #krate::FieldsBuf| {
                    __lb_fb.push_fmt(#k, ::core::format_args!("{}", *#f))
                });
            })
        });
        let writer_format = LitStr::new(&plan.format, lit_span);
        // Bare placeholders only: literal bytes and each value's `plain`,
        // the bytes `format_args!` would write, without `core::fmt`.
        // Whether the message is plain (`Record::plain_message`): bare
        // placeholders only, the literal text plain, and each value of a
        // type whose `plain` always is. Constants all: the check costs the
        // writer nothing.
        let plain = match bare {
            Some(pieces) => {
                let text: String = pieces
                    .iter()
                    .filter_map(|piece| match piece {
                        Bare::Lit(text) => Some(text.as_str()),
                        Bare::Slot(_) => None,
                    })
                    .collect();
                let text = LitStr::new(&text, lit_span);
                let slots = pieces.iter().filter_map(|piece| match piece {
                    Bare::Slot(i) => Some(&kinds[*i]),
                    Bare::Lit(_) => None,
                });
                quote_spanned!(site=> {
                    const __LB_PLAIN_TEXT: bool = #p::is_plain(#text);
                    __LB_PLAIN_TEXT #(&& <#slots as #p::Decode>::PLAIN)*
                })
            }
            None => quote_spanned!(site=> false),
        };
        let write_message = match bare {
            Some(pieces) => {
                let steps = pieces.iter().map(|piece| match piece {
                    Bare::Lit(text) => {
                        let bytes = syn::LitByteStr::new(text.as_bytes(), lit_span);
                        quote_spanned!(site=> __lb_out.extend_from_slice(#bytes);)
                    }
                    Bare::Slot(i) => {
                        let v = &values[*i];
                        quote_spanned!(site=> #v.plain(__lb_out);)
                    }
                });
                quote_spanned!(site=> #(#steps)*)
            }
            None => quote_spanned!(site=>
                #p::write_fmt(__lb_out, ::core::format_args!(#writer_format #(, #values)*));
            ),
        };
        // With fields the record always takes the general path.
        let size = if self.fields.is_empty() {
            quote_spanned!(site=> {
                let __lb_size = ::core::option::Option::Some(0usize);
                #(let __lb_size = #p::add(__lb_size, #p::Arg::raw_size(&#slot_names));)*
                __lb_size
            })
        } else {
            quote_spanned!(site=> ::core::option::Option::None)
        };

        quote_spanned! {site=>
            {
                let __lb_level: #krate::Level = #level;
                // Checked by the compiler as `format!` checks it; never run.
                let _ = || #p::check(::core::format_args!(#lit #check_args));
                if let ::core::option::Option::Some(__lb_logger) = #enabled {
                    #(let #field_names = &(#field_exprs);)*
                    #(let #positional = &(#positional_exprs);)*
                    #(let #named = &(#named_exprs);)*
                    #(let #capture_names = &#capture_idents;)*
                    #(#picks)*
                    fn __lb_format<#(#kinds: #p::Decode),*>(
                        __lb_bytes: &[u8],
                        __lb_out: &mut ::std::vec::Vec<u8>,
                    ) -> bool {
                        let mut __lb_r = #p::Reader::new(__lb_bytes);
                        #(#decodes)*
                        #write_message
                        #plain
                    }
                    // One parameter per placeholder: as many as the call has.
                    #[allow(clippy::too_many_arguments)]
                    fn __lb_formatter<#(#kinds: #p::Arg),*>(#(_: &#kinds),*) -> #p::FormatFn {
                        __lb_format::<#(<#kinds as #p::Arg>::Kind),*>
                    }
                    static __LB_SITE: #p::Site = #p::Site {
                        target: #target,
                        module: ::core::module_path!(),
                        file: ::core::file!(),
                        line: ::core::line!(),
                        format: #lit,
                        function: ::core::option::Option::None,
                    };
                    #p::log(
                        __lb_logger,
                        __lb_level,
                        &__LB_SITE,
                        __lb_formatter(#(&#slot_names),*),
                        #size,
                        |__lb_out: &mut #p::Out<'_>| {
                            #(#p::Arg::put_raw(&#slot_names, __lb_out);)*
                        },
                        |__lb_args: &mut ::std::vec::Vec<u8>, __lb_fields: &mut #krate::FieldsBuf| {
                            #(#field_pushes)*
                            #(#encodes)*
                        },
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hole(
        arg: ArgRef,
        head: &str,
        width: Option<Count>,
        precision: Option<Count>,
        ty: &str,
    ) -> Piece {
        Piece::Hole {
            arg,
            spec: Spec {
                head: head.into(),
                width,
                precision,
                ty: ty.into(),
            },
        }
    }

    /// Each slot's source and the spec it is formatted with at the call.
    type Slots = Vec<(Source, Option<String>)>;

    fn plan(input: &str) -> (String, Slots, Vec<String>) {
        let call: Call = syn::parse_str(input).unwrap();
        let plan = call.plan().unwrap();
        let slots = plan
            .slots
            .iter()
            .map(|s| (s.source, s.eager.as_ref().map(|e| e.0.clone())))
            .collect();
        (plan.format, slots, plan.captures)
    }

    /// Each placeholder, width and precision becomes a slot of its own,
    /// named by position in the writer's format string.
    #[test]
    fn every_placeholder_and_count_gets_a_slot() {
        use Source::*;
        let (format, slots, captures) =
            plan(r#"[c] [l] "a {:>1$} {x:?} {0} {:.*} {{}} {n:w$}", 5, 3, 2, n = 7"#);
        assert_eq!(format, "a {1:>0$} {2:?} {3:} {5:.4$} {{}} {7:6$}");
        assert_eq!(
            slots,
            vec![
                (Positional(1), None),
                (Positional(0), Some("{0:>1$}".into())),
                (Capture(0), Some("{0:?}".into())),
                (Positional(0), Some("{0:}".into())),
                (Positional(1), None),
                (Positional(2), Some("{0:.1$}".into())),
                (Capture(1), None),
                (Named(0), Some("{0:1$}".into())),
            ]
        );
        assert_eq!(captures, ["x", "w"]);
        // Fields first, then `;`, then the format string.
        let call: Call =
            syn::parse_str(r#"[c] [l] target: "t", a = 1, "b" = x; "m {}", y"#).unwrap();
        assert_eq!(call.fields.len(), 2);
        assert_eq!(
            (call.fields[0].0.as_str(), call.fields[1].0.as_str()),
            ("a", "b")
        );
        assert!(call.target.is_some() && call.logger.is_none());
        assert!(syn::parse_str::<Call>(r#"[c] [l] a = 1 "m""#).is_err());
        assert!(syn::parse_str::<Call>(r#"[c] [l] "m", n = 1, 2"#).is_err());
    }

    #[test]
    fn format_strings_split_into_text_and_placeholders() {
        use ArgRef::*;
        assert_eq!(
            parse_format("a {{b}} {} {0:>8} {name:*^+#010.3x?}").unwrap(),
            vec![
                Piece::Lit("a {b} ".into()),
                hole(Next, "", None, None, ""),
                Piece::Lit(" ".into()),
                hole(Index(0), ">", Some(Count::Lit(8)), None, ""),
                Piece::Lit(" ".into()),
                hole(
                    Name("name".into()),
                    "*^+#0",
                    Some(Count::Lit(10)),
                    Some(Count::Lit(3)),
                    "x?"
                ),
            ]
        );
        assert_eq!(
            parse_format("{:1$.*} {:w$.p$e} {:x}").unwrap(),
            vec![
                hole(
                    Next,
                    "",
                    Some(Count::Arg(Index(1))),
                    Some(Count::Arg(Next)),
                    ""
                ),
                Piece::Lit(" ".into()),
                hole(
                    Next,
                    "",
                    Some(Count::Arg(Name("w".into()))),
                    Some(Count::Arg(Name("p".into()))),
                    "e"
                ),
                Piece::Lit(" ".into()),
                hole(Next, "", None, None, "x"),
            ]
        );
        // A fill that is itself a digit or a brace-free symbol, and `0$`.
        assert_eq!(
            parse_format("{:0>0$}").unwrap(),
            vec![hole(Next, "0>", Some(Count::Arg(Index(0))), None, "")]
        );
        for bad in ["{", "}", "{:q}", "{0", "{:.}"] {
            assert_eq!(parse_format(bad), None, "{bad}");
        }
    }
}
