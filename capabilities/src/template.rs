//! `{key}` placeholders in plugin.toml, filled in from the backend's config.
//!
//! A plugin cannot know where an operator keeps its share, so it writes `{share_path}` and the
//! host fills that in when the backend loads. Exec patterns must know which text came from the
//! config (a value containing `*` or `|` stays literal), so expansion yields [`Piece`]s rather
//! than a string that would be re-parsed later.

use std::collections::BTreeMap;
use std::fmt;

/// A string from plugin.toml, split into text and `{key}` placeholders.
/// `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Key(String),
}

/// One run of an expanded template. Only `Syntax` (written by the plugin author) may carry
/// pattern syntax; `Literal` (from the operator's config) always means itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Syntax(&'a str),
    Literal(&'a str),
}

impl Piece<'_> {
    pub fn text(&self) -> &str {
        match self {
            Piece::Syntax(s) | Piece::Literal(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{` at byte {at} is never closed; write `{{{{` for a literal brace")]
    Unclosed { at: usize },
    #[error("`}}` at byte {at} has no matching `{{`; write `}}}}` for a literal brace")]
    UnmatchedClose { at: usize },
    #[error("`{{{key}}}` is not a valid config key (use letters, digits, `_`, `-` or `.`)")]
    InvalidKey { key: String },
}

/// A placeholder whose key the backend config does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the backend config has no `{key}`")]
pub struct MissingKey {
    pub key: String,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            text.push_str(&rest[..i]);
            let brace = rest.as_bytes()[i];
            let after = &rest[i + 1..];
            if after.as_bytes().first() == Some(&brace) {
                text.push(char::from(brace));
                rest = &after[1..];
                offset += i + 2;
                continue;
            }
            let at = offset + i;
            if brace == b'}' {
                return Err(TemplateError::UnmatchedClose { at });
            }
            let end = after.find('}').ok_or(TemplateError::Unclosed { at })?;
            let key = &after[..end];
            if key.is_empty() || !key.chars().all(is_key_char) {
                return Err(TemplateError::InvalidKey {
                    key: key.to_owned(),
                });
            }
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text)));
            }
            segments.push(Segment::Key(key.to_owned()));
            rest = &after[end + 1..];
            offset += i + end + 2;
        }
        text.push_str(rest);
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            segments,
        })
    }

    /// The string as written in plugin.toml.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The config keys this template needs, in order of appearance.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Text(_) => None,
        })
    }

    /// Expands placeholders with `lookup`, keeping track of which text came from where.
    pub fn pieces_with<'a, F>(&'a self, lookup: F) -> Result<Vec<Piece<'a>>, MissingKey>
    where
        F: Fn(&'a str) -> Option<&'a str>,
    {
        self.segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(t) => Ok(Piece::Syntax(t.as_str())),
                Segment::Key(k) => lookup(k)
                    .map(Piece::Literal)
                    .ok_or_else(|| MissingKey { key: k.clone() }),
            })
            .collect()
    }

    /// Expands placeholders from the backend config.
    pub fn pieces<'a>(
        &'a self,
        config: &'a BTreeMap<String, String>,
    ) -> Result<Vec<Piece<'a>>, MissingKey> {
        self.pieces_with(|key| config.get(key).map(String::as_str))
    }

    /// Expands placeholders into a plain string, for values that have no pattern syntax.
    pub fn render(&self, config: &BTreeMap<String, String>) -> Result<String, MissingKey> {
        Ok(self.pieces(config)?.iter().map(Piece::text).collect())
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_keys_and_escaped_braces() {
        let t = Template::parse("{share_path}/volume-{{id}}-{x}").unwrap();
        assert_eq!(t.keys().collect::<Vec<_>>(), ["share_path", "x"]);
        let c = config(&[("share_path", "/srv/share"), ("x", "1")]);
        assert_eq!(t.render(&c).unwrap(), "/srv/share/volume-{id}-1");
        assert_eq!(t.source(), "{share_path}/volume-{{id}}-{x}");
        assert_eq!(Template::parse("").unwrap().render(&c).unwrap(), "");
    }

    #[test]
    fn missing_key_is_named() {
        let t = Template::parse("{share_path}/x").unwrap();
        let err = t.render(&config(&[("other", "v")])).unwrap_err();
        assert_eq!(err.key, "share_path");
    }

    #[test]
    fn config_values_are_literal_pieces() {
        let t = Template::parse("{p}/volume-*").unwrap();
        let c = config(&[("p", "/srv/*|x")]);
        assert_eq!(
            t.pieces(&c).unwrap(),
            [Piece::Literal("/srv/*|x"), Piece::Syntax("/volume-*")]
        );
    }

    #[test]
    fn malformed_templates_are_rejected() {
        assert_eq!(
            Template::parse("ab{share").unwrap_err(),
            TemplateError::Unclosed { at: 2 }
        );
        assert_eq!(
            Template::parse("a}b").unwrap_err(),
            TemplateError::UnmatchedClose { at: 1 }
        );
        assert!(matches!(
            Template::parse("{}").unwrap_err(),
            TemplateError::InvalidKey { .. }
        ));
        assert!(matches!(
            Template::parse("{a b}").unwrap_err(),
            TemplateError::InvalidKey { .. }
        ));
        let msg = Template::parse("{").unwrap_err().to_string();
        assert!(msg.contains("`{{`"), "{msg}");
    }
}
