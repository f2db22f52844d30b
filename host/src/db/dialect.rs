//! What differs between the two stores. Queries are written once, in the SQL both accept,
//! with `$N` parameters; the few spellings that differ are SQLite's in the source and
//! turned into PostgreSQL's by [`Dialect::sql`] where a query holds one:
//!
//! | SQLite                     | PostgreSQL                                        |
//! |----------------------------|---------------------------------------------------|
//! | `json_array(a, …)`         | `CAST(json_build_array(a, …) AS text)`            |
//! | `group_concat(x, sep …)`   | `string_agg(x, sep …)`                            |
//! | `SUM(x)` (an integer)      | `CAST(SUM(x) AS BIGINT)` (PostgreSQL's is numeric) |
//! | `json_each(o)` (an object) | `json_each_text(CAST(o AS json))`                 |
//! | `LIMIT -1`                 | `LIMIT ALL`                                       |
//!
//! Booleans are integers (0 and 1) in both, bound and read as `i64`; timestamps are text.

use std::borrow::Cow;

use super::DbError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Held by the connection that migrates, so hosts starting together migrate one at a time.
pub(super) const MIGRATION_LOCK: &str =
    "SELECT COUNT(*) FROM (SELECT pg_advisory_lock(7426521)) AS l";

impl Dialect {
    /// The store a database URL names.
    pub fn of_url(url: &str) -> Result<Dialect, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(sqlx::Error::Configuration(
                format!(
                    "database_url `{}` names no store Ashlar runs on: use `sqlite://FILE` or \
                     `postgres://USER@HOST:PORT/DATABASE`",
                    redact(url)
                )
                .into(),
            )
            .into())
        }
    }

    /// The URL to connect with: a SQLite file is created when missing.
    pub(super) fn connect_url(self, url: &str) -> String {
        match self {
            Dialect::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        }
    }

    /// Run on every new connection.
    pub(super) fn session_setup(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;"
            }
            Dialect::Postgres => "SET application_name = 'ashlar'",
        }
    }

    /// How a write transaction begins (see `Db::write_tx`).
    pub(super) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// What a write transaction runs first, to queue behind every other host's writers.
    pub(super) fn write_lock(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => {
                Some("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock(7426522)) AS l")
            }
        }
    }

    /// `sql`, written in SQLite's spelling, in this store's (see the module's table).
    pub fn sql(self, sql: &str) -> Cow<'_, str> {
        match self {
            Dialect::Sqlite => Cow::Borrowed(sql),
            Dialect::Postgres => Cow::Owned(to_postgres(sql)),
        }
    }

    /// The elements of a JSON array of text bound as parameter `$n`, as a one-column table
    /// named `value` (`… IN (SELECT value FROM {this})`).
    pub(super) fn json_text_array(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("json_each(${n})"),
            Dialect::Postgres => format!("json_array_elements_text(CAST(${n} AS json)) AS value"),
        }
    }

    /// `column` (a JSON object as text) with `key` set to the text `value` (an SQL
    /// expression).
    pub(super) fn json_set_text(self, column: &str, key: &str, value: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_set({column}, '$.{key}', {value})"),
            Dialect::Postgres => format!(
                "CAST(jsonb_set(CAST({column} AS jsonb), '{{{key}}}', to_jsonb(CAST({value} AS text))) AS text)"
            ),
        }
    }

    /// `column` (a JSON object as text) without `key`.
    pub(super) fn json_remove(self, column: &str, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_remove({column}, '$.{key}')"),
            Dialect::Postgres => format!("CAST(CAST({column} AS jsonb) - '{key}' AS text)"),
        }
    }
}

/// A database URL fit for a log: its password replaced.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Calls rewritten with their arguments: SQLite's name, PostgreSQL's opening and closing.
const CALLS: [(&str, &str, &str); 3] = [
    ("json_array", "CAST(json_build_array(", ") AS text)"),
    ("SUM", "CAST(SUM(", ") AS BIGINT)"),
    ("json_each", "json_each_text(CAST(", " AS json))"),
];

/// The SQLite spellings of the module's table, rewritten. Quoted text is left alone.
fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\'' {
            let end = quoted_end(b, i);
            out.push_str(&sql[i..end]);
            i = end;
            continue;
        }
        let rest = &sql[i..];
        let word_start = i == 0 || !is_ident(b[i - 1]);
        if word_start {
            // A call whose arguments carry over: its new opening, and what closes it.
            let call = CALLS
                .iter()
                .find_map(|(name, open, close)| Some((name, open, close, call_args(rest, name)?)));
            if let Some((name, open, close, args)) = call {
                out.push_str(open);
                out.push_str(&to_postgres(args));
                out.push_str(close);
                i += name.len() + 1 + args.len() + 1;
                continue;
            }
            if rest.starts_with("group_concat(") {
                out.push_str("string_agg(");
                i += "group_concat(".len();
                continue;
            }
            if rest.starts_with("LIMIT -1") {
                out.push_str("LIMIT ALL");
                i += "LIMIT -1".len();
                continue;
            }
        }
        let ch = rest.chars().next().expect("inside the text");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

/// The index just past the quoted text that starts at `start` (`''` is a quote inside).
fn quoted_end(b: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < b.len() {
        if b[j] == b'\'' {
            if b.get(j + 1) == Some(&b'\'') {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The argument text of a call to `name` at the start of `s`, up to its matching `)`.
fn call_args<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let open = s.strip_prefix(name)?.strip_prefix('(')?;
    let b = open.as_bytes();
    let mut depth = 0usize;
    let mut j = 0;
    while j < b.len() {
        match b[j] {
            b'\'' => {
                j = quoted_end(b, j);
                continue;
            }
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(&open[..j]),
            b')' => depth -= 1,
            _ => {}
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_spellings_become_postgres_ones() {
        let pg = Dialect::Postgres;
        assert_eq!(
            pg.sql("SELECT '[' || json_array(v.id, COALESCE(v.n, 'json_array(x)')) || ']'"),
            "SELECT '[' || CAST(json_build_array(v.id, COALESCE(v.n, 'json_array(x)')) AS text) || ']'"
        );
        assert_eq!(
            pg.sql("SELECT group_concat(j, ',' ORDER BY k0 DESC) FROM (x) LIMIT -1"),
            "SELECT string_agg(j, ',' ORDER BY k0 DESC) FROM (x) LIMIT ALL"
        );
        assert_eq!(
            pg.sql("SELECT COALESCE(SUM(size), 0), my_SUM(x) FROM t"),
            "SELECT COALESCE(CAST(SUM(size) AS BIGINT), 0), my_SUM(x) FROM t"
        );
        assert_eq!(
            pg.sql("EXISTS (SELECT 1 FROM json_each(v.metadata) m WHERE m.key = 'it''s')"),
            "EXISTS (SELECT 1 FROM json_each_text(CAST(v.metadata AS json)) m WHERE m.key = 'it''s')"
        );
        assert_eq!(Dialect::Sqlite.sql("SELECT SUM(x)"), "SELECT SUM(x)");
    }

    #[test]
    fn a_password_never_reaches_the_log() {
        assert_eq!(
            redact("postgres://ashlar:s3cret@127.0.0.1:5432/ashlar"),
            "postgres://ashlar:***@127.0.0.1:5432/ashlar"
        );
        assert!(Dialect::of_url("mysql://x").is_err());
        assert_eq!(
            Dialect::of_url("postgresql://h/db").unwrap(),
            Dialect::Postgres
        );
    }
}
