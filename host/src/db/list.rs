//! Pages of a list, for every entity alike: scope (one project or all), filters, sort keys,
//! marker and limit, turned into one `SELECT`. Each entity says which filters and sort keys
//! it takes and which column or expression each one is ([`Listing`]); the API's list
//! helper fills a [`ListQuery`] from the query string with Cinder's semantics.

use super::DbRow;
use sqlx::Row;

use super::{Db, DbError};

/// Whose rows a list shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One project's.
    Project(String),
    /// Every project's (an administrator's `all_tenants`).
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

impl SortDir {
    fn sql(self) -> &'static str {
        match self {
            SortDir::Asc => "ASC",
            SortDir::Desc => "DESC",
        }
    }
    /// The comparison that finds rows after the marker in this direction.
    fn after(self) -> &'static str {
        match self {
            SortDir::Asc => ">",
            SortDir::Desc => "<",
        }
    }
}

/// Cinder's `limit`, `marker`, `offset` and sort keys (`sort=k1:d1,k2` or
/// `sort_key`/`sort_dir`). Without keys, `created_at` descending.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub marker: Option<String>,
    pub sort: Vec<(String, SortDir)>,
}

/// A list request, ready for an entity's [`Listing`].
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub scope: Scope,
    /// Filter names and values as the client gave them (`status=available`).
    pub filters: Vec<(String, String)>,
    pub page: Page,
}

impl ListQuery {
    /// Everything in one project, oldest first: for callers inside the host.
    pub fn project(project: &str) -> ListQuery {
        ListQuery {
            scope: Scope::Project(project.to_string()),
            filters: Vec::new(),
            page: Page::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The request names something the list cannot do (a sort key, a filter value).
    #[error("{0}")]
    Invalid(String),
    /// The marker is not a row of this list (Cinder's `MarkerNotFound`).
    #[error("Marker {0} could not be found.")]
    MarkerNotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ListError {
    fn from(e: sqlx::Error) -> Self {
        ListError::Db(e.into())
    }
}

/// How one filter is matched.
#[derive(Clone, Copy, Debug)]
pub enum Match {
    /// `expr = value`.
    Equal(&'static str),
    /// `expr = value` for a boolean column, the value read as Cinder reads booleans.
    Bool(&'static str),
    /// A `{"key": "value", …}` JSON object, every pair present in the metadata object the
    /// column holds.
    Metadata(&'static str),
}

/// What an entity's list takes: its `FROM` (with joins), the columns it selects, the
/// alias of its own table, which rows are live, its filters and its sort keys.
pub struct Listing {
    pub from: &'static str,
    pub columns: &'static str,
    pub alias: &'static str,
    /// The condition a row must meet to be listed at all (not soft-deleted).
    pub live: &'static str,
    /// Filter name → how it matches.
    pub filters: &'static [(&'static str, Match)],
    /// Sort key → SQL expression (nullable text wrapped so NULL sorts as empty).
    pub sort_keys: &'static [(&'static str, &'static str)],
}

/// A bound parameter: lists bind text and integers only.
enum Bind {
    Text(String),
    Int(i64),
}

impl Listing {
    /// Whether `name` is one of this list's filters.
    pub fn has_filter(&self, name: &str) -> bool {
        self.filters.iter().any(|(f, _)| *f == name)
    }

    fn sort_expr(&self, key: &str) -> Result<&'static str, ListError> {
        self.sort_keys
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| *e)
            .ok_or_else(|| {
                ListError::Invalid(format!(
                    "Invalid input received: Invalid sort key {key}; use one of {}.",
                    self.sort_keys
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }

    /// The `SELECT` of `columns` for one page, its parameters, and the page's order over
    /// the sort keys it also selects as `k0, k1, …`; checks the marker first.
    async fn page_sql(
        &self,
        db: &Db,
        q: &ListQuery,
        columns: &str,
    ) -> Result<(String, Vec<Bind>, String), ListError> {
        let a = self.alias;
        let mut sql = String::new();
        let mut binds: Vec<Bind> = Vec::new();
        let param = |binds: &mut Vec<Bind>, b: Bind| {
            binds.push(b);
            format!("${}", binds.len())
        };
        if let Scope::Project(p) = &q.scope {
            let n = param(&mut binds, Bind::Text(p.clone()));
            sql.push_str(&format!(" AND {a}.project_id = {n}"));
        }
        for (name, value) in &q.filters {
            let Some((_, how)) = self.filters.iter().find(|(f, _)| f == name) else {
                continue;
            };
            match how {
                Match::Equal(expr) => {
                    let n = param(&mut binds, Bind::Text(value.clone()));
                    sql.push_str(&format!(" AND {expr} = {n}"));
                }
                Match::Bool(expr) => {
                    let b = parse_bool(value).ok_or_else(|| {
                        ListError::Invalid(format!(
                            "Invalid input for field/attribute {name}. Value: {value}. It must be a boolean."
                        ))
                    })?;
                    let n = param(&mut binds, Bind::Int(b as i64));
                    sql.push_str(&format!(" AND {expr} = {n}"));
                }
                Match::Metadata(column) => {
                    let pairs = parse_metadata(value).ok_or_else(|| {
                        ListError::Invalid(format!(
                            "Invalid input for field/attribute {name}. Value: {value}. It must be a JSON object of strings, e.g. {{\"key\": \"value\"}}."
                        ))
                    })?;
                    for (k, v) in pairs {
                        let kn = param(&mut binds, Bind::Text(k));
                        let vn = param(&mut binds, Bind::Text(v));
                        sql.push_str(&format!(
                            " AND EXISTS (SELECT 1 FROM json_each({column}) m WHERE m.key = {kn} AND m.value = {vn})"
                        ));
                    }
                }
            }
        }
        let mut keys: Vec<(String, SortDir)> = Vec::new();
        for (key, dir) in &q.page.sort {
            keys.push((self.sort_expr(key)?.to_string(), *dir));
        }
        if keys.is_empty() {
            keys.push((self.sort_expr("created_at")?.to_string(), SortDir::Desc));
        }
        // The id breaks ties, so a marker always names one place in the order.
        let last_dir = keys.last().map_or(SortDir::Desc, |(_, d)| *d);
        let id_expr = format!("{a}.id");
        if !keys.iter().any(|(e, _)| *e == id_expr) {
            keys.push((id_expr.clone(), last_dir));
        }
        if let Some(marker) = &q.page.marker {
            let found: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT 1 FROM {} WHERE {id_expr} = $1 AND {}",
                self.from, self.live
            ))
            .bind(marker)
            .fetch_optional(&db.pool)
            .await?;
            if found.is_none() {
                return Err(ListError::MarkerNotFound(marker.clone()));
            }
            // Rows after the marker: (k1 after m1) OR (k1 = m1 AND k2 after m2) OR …
            let m = param(&mut binds, Bind::Text(marker.clone()));
            let of_marker =
                |expr: &str| format!("(SELECT {expr} FROM {} WHERE {id_expr} = {m})", self.from);
            let mut ors = Vec::new();
            for i in 0..keys.len() {
                let mut ands: Vec<String> = keys[..i]
                    .iter()
                    .map(|(e, _)| format!("{e} = {}", of_marker(e)))
                    .collect();
                let (e, d) = &keys[i];
                ands.push(format!("{e} {} {}", d.after(), of_marker(e)));
                ors.push(format!("({})", ands.join(" AND ")));
            }
            sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
        }
        let order: Vec<String> = keys
            .iter()
            .map(|(e, d)| format!("{e} {}", d.sql()))
            .collect();
        let keys_as: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (e, _))| format!("{e} AS k{i}"))
            .collect();
        let by_keys: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (_, d))| format!("k{i} {}", d.sql()))
            .collect();
        sql = format!(
            "SELECT {columns}, {} FROM {} WHERE {}{sql} ORDER BY {}",
            keys_as.join(", "),
            self.from,
            self.live,
            order.join(", ")
        );
        if let Some(limit) = q.page.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        } else if q.page.offset.is_some() {
            sql.push_str(" LIMIT -1");
        }
        if let Some(offset) = q.page.offset {
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        Ok((sql, binds, by_keys.join(", ")))
    }

    /// The rows of one page, in one query (after one more that checks the marker).
    pub(super) async fn fetch(&self, db: &Db, q: &ListQuery) -> Result<Vec<DbRow>, ListError> {
        let (sql, binds, _) = self.page_sql(db, q, self.columns).await?;
        let sql = db.dialect.sql(&sql);
        Ok(bind_all(sqlx::query(&sql), binds)
            .fetch_all(&db.pool)
            .await?)
    }

    /// One page whose `columns` is one JSON value per row, read as a `T` each: the page
    /// comes back as a single text (`[v1,v2,…]`, in order), so the driver copies one value
    /// instead of a row and a value per column for each item.
    pub(super) async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        db: &Db,
        q: &ListQuery,
    ) -> Result<Vec<T>, ListError> {
        let columns = format!("{} AS j", self.columns);
        let (sql, binds, order) = self.page_sql(db, q, &columns).await?;
        // group_concat joins text, so the values are not parsed again as json_group_array
        // would; it keeps the page's order only when told it.
        let sql = format!(
            "SELECT '[' || COALESCE(group_concat(j, ',' ORDER BY {order}), '') || ']' FROM ({sql}) AS page"
        );
        let sql = db.dialect.sql(&sql);
        let text: String = bind_all(sqlx::query(&sql), binds)
            .fetch_one(&db.pool)
            .await?
            .try_get(0)?;
        serde_json::from_str(&text).map_err(|e| {
            ListError::Db(DbError::Corrupt {
                table: self.from,
                id: String::new(),
                message: e.to_string(),
            })
        })
    }
}

/// Binds a page's parameters in order.
fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    query
}

/// Cinder's boolean spellings (`oslo_utils.strutils.bool_from_string`, strict).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "on" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "off" | "f" => Some(false),
        _ => None,
    }
}

/// A metadata filter: a JSON object of strings (Cinder also takes a Python-dict string).
fn parse_metadata(s: &str) -> Option<Vec<(String, String)>> {
    let parsed: serde_json::Value = serde_json::from_str(s)
        .or_else(|_| serde_json::from_str(&s.replace('\'', "\"")))
        .ok()?;
    parsed
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_filters_read_json_and_python_dicts() {
        assert_eq!(
            parse_metadata(r#"{"a": "1"}"#),
            Some(vec![("a".into(), "1".into())])
        );
        assert_eq!(
            parse_metadata("{'a': 'x'}"),
            Some(vec![("a".into(), "x".into())])
        );
        assert_eq!(parse_metadata(r#"{"a": 1}"#), None);
        assert_eq!(parse_metadata("[1]"), None);
    }
}
