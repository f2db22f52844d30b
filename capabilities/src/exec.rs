//! Exec policy: which command lines a plugin may run on the host.
//!
//! A pattern list matches an argument list position by position. A lone `**` as the last
//! element matches any remaining arguments. Every other element is alternatives separated by
//! `|`; each alternative is a glob where `*` matches any run of characters except `/` and `?`
//! one character except `/`. Wildcards never match an empty, `.` or `..` path component, so
//! `{share_path}/*` cannot reach `{share_path}/..`. Text that came from the backend config is
//! always literal.

use std::fmt;

use super::template::Piece;
use super::{CapabilityKind, Denied};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("argument {arg}: `**` must be the last argument pattern (it matches all the rest)")]
    RestNotLast { arg: usize },
    #[error(
        "argument {arg}: `**` may only stand alone as the last argument pattern; \
         use `*` to match within one path component"
    )]
    DoubleStar { arg: usize },
    #[error("argument {arg}: `{pattern}` has an empty `|` alternative")]
    EmptyAlternative { arg: usize, pattern: String },
}

/// Why a program name cannot be run; the host resolves bare names on its own PATH, so a path
/// would let the plugin pick the binary.
pub fn check_program_name(program: &str) -> Result<(), &'static str> {
    if program.is_empty() {
        Err("the program name is empty")
    } else if program.contains('/') {
        Err("it must be a bare program name, not a path")
    } else if program == "." || program == ".." || program.contains('\0') {
        Err("it is not a program name")
    } else {
        Ok(())
    }
}

/// An argument-list pattern, e.g. `create -f raw|qcow2 /srv/share/volume-* *`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgPattern {
    elements: Vec<Element>,
    /// Ends in `**`.
    rest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    alternatives: Vec<Glob>,
}

/// One alternative, split at `/` so that wildcards stay inside one component.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    components: Vec<Vec<Tok>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    Star,
    One,
}

impl ArgPattern {
    /// Parses expanded templates, one per argument position.
    pub fn parse(elements: &[Vec<Piece<'_>>]) -> Result<Self, PatternError> {
        let mut parsed = Vec::with_capacity(elements.len());
        for (i, pieces) in elements.iter().enumerate() {
            let arg = i + 1;
            if pieces.as_slice() == [Piece::Syntax("**")] {
                if arg != elements.len() {
                    return Err(PatternError::RestNotLast { arg });
                }
                return Ok(ArgPattern {
                    elements: parsed,
                    rest: true,
                });
            }
            parsed.push(Element::parse(arg, pieces)?);
        }
        Ok(ArgPattern {
            elements: parsed,
            rest: false,
        })
    }

    /// Parses patterns with no config values in them (the operator's grants).
    pub fn parse_plain(args: &[String]) -> Result<Self, PatternError> {
        let elements: Vec<_> = args.iter().map(|a| vec![Piece::Syntax(a)]).collect();
        Self::parse(&elements)
    }

    pub fn matches(&self, args: &[String]) -> bool {
        let count_ok = if self.rest {
            args.len() >= self.elements.len()
        } else {
            args.len() == self.elements.len()
        };
        count_ok
            && self
                .elements
                .iter()
                .zip(args)
                .all(|(element, arg)| element.matches(arg))
    }
}

impl Element {
    fn parse(arg: usize, pieces: &[Piece<'_>]) -> Result<Self, PatternError> {
        let source: String = pieces.iter().map(Piece::text).collect();
        let mut alternatives = Vec::new();
        let mut current = Vec::new();
        // Whether the current alternative was written at all; `{x}` with x = "" counts.
        let mut written = false;
        let mut split = false;
        for piece in pieces {
            match piece {
                Piece::Literal(text) => {
                    written = true;
                    current.extend(text.chars().map(Tok::Char));
                }
                Piece::Syntax(text) => {
                    if text.contains("**") {
                        return Err(PatternError::DoubleStar { arg });
                    }
                    for c in text.chars() {
                        match c {
                            '|' => {
                                if !written {
                                    return Err(PatternError::EmptyAlternative {
                                        arg,
                                        pattern: source,
                                    });
                                }
                                alternatives.push(Glob::new(std::mem::take(&mut current)));
                                written = false;
                                split = true;
                                continue;
                            }
                            '*' => current.push(Tok::Star),
                            '?' => current.push(Tok::One),
                            c => current.push(Tok::Char(c)),
                        }
                        written = true;
                    }
                }
            }
        }
        if split && !written {
            return Err(PatternError::EmptyAlternative {
                arg,
                pattern: source,
            });
        }
        alternatives.push(Glob::new(current));
        Ok(Element { alternatives })
    }

    fn matches(&self, arg: &str) -> bool {
        self.alternatives.iter().any(|glob| glob.matches(arg))
    }
}

impl Glob {
    fn new(tokens: Vec<Tok>) -> Self {
        let components = tokens
            .split(|t| *t == Tok::Char('/'))
            .map(<[Tok]>::to_vec)
            .collect();
        Glob { components }
    }

    fn matches(&self, arg: &str) -> bool {
        let parts: Vec<&str> = arg.split('/').collect();
        parts.len() == self.components.len()
            && self.components.iter().zip(parts).all(|(pattern, part)| {
                let wild = !pattern.iter().all(is_char);
                if wild && matches!(part, "" | "." | "..") {
                    return false;
                }
                let text: Vec<char> = part.chars().collect();
                glob_match(pattern, &text)
            })
    }
}

fn is_char(t: &Tok) -> bool {
    matches!(t, Tok::Char(_))
}

/// Classic wildcard matching with single-star backtracking; linear in practice.
fn glob_match(pattern: &[Tok], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|tok| *tok == Tok::Star)
}

/// A program the plugin may run: the manifest's shapes, narrowed by the grant's if it has any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRule {
    program: String,
    requested: Vec<ArgPattern>,
    granted: Option<Vec<ArgPattern>>,
}

impl ExecRule {
    pub(crate) fn new(program: String, granted: Option<Vec<ArgPattern>>) -> Self {
        ExecRule {
            program,
            requested: Vec::new(),
            granted,
        }
    }

    pub(crate) fn push_requested(&mut self, pattern: ArgPattern) {
        self.requested.push(pattern);
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// The argument shapes from plugin.toml, with config values filled in.
    pub fn requested(&self) -> &[ArgPattern] {
        &self.requested
    }

    /// The operator's argument shapes, if the grant constrains arguments.
    pub fn granted(&self) -> Option<&[ArgPattern]> {
        self.granted.as_deref()
    }

    pub fn allows(&self, args: &[String]) -> bool {
        self.requested.iter().any(|p| p.matches(args))
            && self
                .granted
                .as_ref()
                .is_none_or(|g| g.iter().any(|p| p.matches(args)))
    }
}

/// The runtime check behind [`super::EffectiveCapabilities::exec_allows`].
pub fn allows(rules: &[ExecRule], program: &str, args: &[String]) -> Result<(), Denied> {
    let command = render_command(program, args);
    let deny = |why: String| Err(Denied::new(CapabilityKind::Exec, why));
    if let Err(why) = check_program_name(program) {
        return deny(format!("exec `{command}` is refused: {why}"));
    }
    if args.iter().any(|a| a.contains('\0')) {
        return deny(format!(
            "exec `{command}` is refused: an argument contains NUL"
        ));
    }
    let Some(rule) = rules.iter().find(|r| r.program == program) else {
        let programs: Vec<&str> = rules.iter().map(|r| r.program.as_str()).collect();
        return deny(format!(
            "exec of `{program}` is not allowed; allowed programs: [{}]",
            programs.join(", ")
        ));
    };
    if !rule.requested.iter().any(|p| p.matches(args)) {
        return deny(format!(
            "exec `{command}` matches none of the allowed shapes: {}",
            render_shapes(program, &rule.requested)
        ));
    }
    if let Some(granted) = &rule.granted
        && !granted.iter().any(|p| p.matches(args))
    {
        return deny(format!(
            "exec `{command}` matches the plugin's shapes but not the backend grant's: {}",
            render_shapes(program, granted)
        ));
    }
    Ok(())
}

fn render_shapes(program: &str, patterns: &[ArgPattern]) -> String {
    patterns
        .iter()
        .map(|p| {
            if p.elements.is_empty() && !p.rest {
                format!("`{program}`")
            } else {
                format!("`{program} {p}`")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_command(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes what would otherwise be ambiguous or unsafe in a log line.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && !word
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '\\' | '`'));
    if plain {
        word.to_owned()
    } else {
        format!("{word:?}")
    }
}

impl fmt::Display for ArgPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words: Vec<String> = self.elements.iter().map(Element::to_string).collect();
        if self.rest {
            words.push("**".to_owned());
        }
        f.write_str(&words.join(" "))
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self
            .alternatives
            .iter()
            .map(Glob::to_string)
            .collect::<Vec<_>>()
            .join("|");
        // Pattern text already escapes literal specials; only spacing needs quotes.
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            write!(f, "{text:?}")
        } else {
            f.write_str(&text)
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, component) in self.components.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            for tok in component {
                match tok {
                    Tok::Star => f.write_str("*")?,
                    Tok::One => f.write_str("?")?,
                    // Literal pattern characters from config values, escaped so they read as such.
                    Tok::Char(c @ ('*' | '?' | '|' | '\\')) => write!(f, "\\{c}")?,
                    Tok::Char(c) => write!(f, "{c}")?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(args: &[&str]) -> ArgPattern {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        ArgPattern::parse_plain(&args).unwrap()
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn alternation_and_positions() {
        let p = pat(&["create", "-f", "raw|qcow2", "/srv/share/volume-*", "*"]);
        assert!(p.matches(&args(&["create", "-f", "raw", "/srv/share/volume-1", "1G"])));
        assert!(p.matches(&args(&[
            "create",
            "-f",
            "qcow2",
            "/srv/share/volume-",
            "1G"
        ])));
        assert!(!p.matches(&args(&[
            "create",
            "-f",
            "vmdk",
            "/srv/share/volume-1",
            "1G"
        ])));
        assert!(!p.matches(&args(&["create", "-f", "raw", "/srv/share/volume-1"])));
        assert!(!p.matches(&args(&[
            "create",
            "-f",
            "raw",
            "/srv/share/volume-1",
            "1G",
            "x"
        ])));
        assert!(!p.matches(&args(&["create", "-f", "raw|qcow2", "/srv/share/v", "1G"])));
        assert_eq!(p.to_string(), "create -f raw|qcow2 /srv/share/volume-* *");
    }

    #[test]
    fn wildcards_stay_in_one_component() {
        let p = pat(&["/srv/share/*"]);
        assert!(p.matches(&args(&["/srv/share/volume-1"])));
        assert!(!p.matches(&args(&["/srv/share/a/b"])));
        assert!(!p.matches(&args(&["/srv/share/.."])));
        assert!(!p.matches(&args(&["/srv/share/."])));
        assert!(!p.matches(&args(&["/srv/share/"])));
        assert!(!p.matches(&args(&["/srv/share/../../etc"])));
        let q = pat(&["/srv/share/.*", "?x"]);
        assert!(q.matches(&args(&["/srv/share/.hidden", "ax"])));
        assert!(!q.matches(&args(&["/srv/share/..", "ax"])));
        assert!(!q.matches(&args(&["/srv/share/.a", "/x"])));
        assert!(!q.matches(&args(&["/srv/share/.a", "x"])));
        // `*` as a whole argument: anything without a slash, but not empty.
        assert!(pat(&["*"]).matches(&args(&["10G"])));
        assert!(!pat(&["*"]).matches(&args(&[""])));
        assert!(pat(&["a*b*c"]).matches(&args(&["aXbbYc"])));
        assert!(!pat(&["a*b*c"]).matches(&args(&["aXbYcZ"])));
    }

    #[test]
    fn double_star_tail() {
        let p = pat(&["-h", "**"]);
        assert!(p.matches(&args(&["-h"])));
        assert!(p.matches(&args(&["-h", "/a/b", "c"])));
        assert!(!p.matches(&args(&[])));
        assert!(pat(&["**"]).matches(&args(&["x", "/y"])));
        assert_eq!(p.to_string(), "-h **");
        assert_eq!(
            ArgPattern::parse_plain(&args(&["**", "x"])).unwrap_err(),
            PatternError::RestNotLast { arg: 1 }
        );
        assert_eq!(
            ArgPattern::parse_plain(&args(&["x", "/srv/**"])).unwrap_err(),
            PatternError::DoubleStar { arg: 2 }
        );
        assert!(matches!(
            ArgPattern::parse_plain(&args(&["raw|"])).unwrap_err(),
            PatternError::EmptyAlternative { arg: 1, .. }
        ));
    }

    #[test]
    fn config_values_are_literal() {
        let pieces = vec![vec![Piece::Literal("/srv/*|x"), Piece::Syntax("/volume-*")]];
        let p = ArgPattern::parse(&pieces).unwrap();
        assert!(p.matches(&args(&["/srv/*|x/volume-1"])));
        assert!(!p.matches(&args(&["/srv/a/volume-1"])));
        assert!(!p.matches(&args(&["x/volume-1"])));
        assert_eq!(p.to_string(), "/srv/\\*\\|x/volume-*");
        // A config value of `**` is not the rest marker.
        let p = ArgPattern::parse(&[vec![Piece::Literal("**")]]).unwrap();
        assert!(p.matches(&args(&["**"])));
        assert!(!p.matches(&args(&["a"])));
    }

    #[test]
    fn rule_needs_manifest_and_grant() {
        let mut rule = ExecRule::new("df".into(), Some(vec![pat(&["-h", "**"])]));
        rule.push_requested(pat(&["**"]));
        let rules = [rule];
        assert!(allows(&rules, "df", &args(&["-h", "/srv"])).is_ok());
        let err = allows(&rules, "df", &args(&["/srv"])).unwrap_err();
        assert!(err.to_string().contains("`df -h **`"), "{err}");
        let err = allows(&rules, "rm", &args(&["-rf", "/"])).unwrap_err();
        assert!(err.to_string().contains("allowed programs: [df]"), "{err}");
        assert!(allows(&rules, "/bin/df", &args(&[])).is_err());
        assert!(allows(&rules, "df", &args(&["-h", "a\0b"])).is_err());
    }

    #[test]
    fn denial_lists_shapes() {
        let mut rule = ExecRule::new("rm".into(), None);
        rule.push_requested(pat(&["-f", "/srv/share/volume-*"]));
        let err = allows(&[rule], "rm", &args(&["-f", "/srv/share/a b"])).unwrap_err();
        assert_eq!(err.kind(), CapabilityKind::Exec);
        assert_eq!(
            err.to_string(),
            "exec `rm -f \"/srv/share/a b\"` matches none of the allowed shapes: \
             `rm -f /srv/share/volume-*`"
        );
    }

    #[test]
    fn program_names() {
        assert!(check_program_name("qemu-img").is_ok());
        for bad in ["", "/usr/bin/rm", "./rm", ".", ".."] {
            assert!(check_program_name(bad).is_err(), "{bad}");
        }
    }
}
