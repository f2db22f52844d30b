//! The one list helper: every list endpoint (volumes, snapshots, attachments, messages)
//! reads its query string here, with Cinder's semantics, into a [`ListQuery`] for the
//! database, and builds its `*_links` "next" link here.
//!
//! - `all_tenants` is a strict boolean (`Value 'x' for 'all_tenants' is not a boolean.`);
//!   an administrator's true lists every project, narrowed by `project_id` when given.
//!   Anyone else, and an administrator without it, sees their own project; their
//!   `all_tenants` is ignored and, from 3.31, their `project_id` is refused as a filter.
//! - Filters are the resource's own (Cinder's `resource_filters.json` for users; a few
//!   more for administrators). From 3.31 a filter the list does not take answers 400;
//!   before, it is ignored.
//! - `limit` (at most [`MAX_LIMIT`], the default too), `offset`, `marker` (404 when it
//!   names nothing), `sort=k1:d1,k2` or the older `sort_key`/`sort_dir` (not both), keys
//!   without a direction descending.
//! - The "next" link appears whenever a page is full, and repeats the request's query with
//!   the marker set to the page's last item.

use serde_json::{Value, json};

use super::{ApiError, Ctx, Microversion};
use crate::db::{ListError, ListQuery, Listing, Page, Scope, SortDir, list::parse_bool};

/// Cinder's `osapi_max_limit`: no page is longer, asked or not.
pub const MAX_LIMIT: i64 = 1000;

/// Parameters that steer a list rather than filter it.
const CONTROL: &[&str] = &[
    "all_tenants",
    "project_id",
    "limit",
    "offset",
    "marker",
    "sort",
    "sort_key",
    "sort_dir",
    "with_count",
];

/// What one list endpoint takes.
pub struct ListSpec {
    /// The collection's path under the project (`volumes`, `volumes/detail`), for links;
    /// `None` when the list has no links (attachments).
    pub link_path: Option<&'static str>,
    /// The links key's stem (`volumes` → `volumes_links`).
    pub collection: &'static str,
    /// What Cinder calls the resource in its not-found messages (`Volume`).
    pub noun: &'static str,
    /// Filters a user may give (Cinder's `resource_filters.json`).
    pub user_filters: &'static [&'static str],
    /// The database's list, whose filters are every one the list takes (administrators'
    /// ones included).
    pub listing: &'static Listing,
    /// The microversion from which filters, sorting and paging apply (messages: 3.5);
    /// before it, the whole list in the default order.
    pub paging_since: u32,
}

/// A parsed list request.
pub struct ListRequest {
    pub query: ListQuery,
    /// The page length in force (the `limit` asked, capped, or [`MAX_LIMIT`]); `None`
    /// before the microversion that pages the list.
    limit: Option<i64>,
    params: Vec<(String, String)>,
}

pub(super) fn integer(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("{name} param must be an integer")))
}

impl ListRequest {
    pub fn parse(
        ctx: &Ctx,
        params: &[(String, String)],
        spec: &ListSpec,
    ) -> Result<ListRequest, ApiError> {
        let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v);
        let all = match get("all_tenants") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                ApiError::bad_request(format!("Value '{v}' for 'all_tenants' is not a boolean."))
            })?,
        };
        let strict = ctx.version >= Microversion(3, 31);
        let scope = match (ctx.is_admin && all, get("project_id")) {
            (true, Some(p)) => Scope::Project(p.clone()),
            (true, None) => Scope::All,
            (false, Some(_)) if strict && !ctx.is_admin => {
                return Err(ApiError::bad_request(
                    "Invalid filters project_id are found in query options.",
                ));
            }
            (false, _) => Scope::Project(ctx.project_id.clone()),
        };
        let mut query = ListQuery {
            scope,
            filters: Vec::new(),
            page: Page::default(),
        };
        let mut limit = MAX_LIMIT;
        if ctx.version < Microversion(3, spec.paging_since) {
            query.page.limit = Some(limit);
            return Ok(ListRequest {
                query,
                limit: None,
                params: Vec::new(),
            });
        }
        let mut invalid = Vec::new();
        for (name, value) in params {
            if CONTROL.contains(&name.as_str()) {
                continue;
            }
            let takes = spec.listing.has_filter(name)
                && (ctx.is_admin || spec.user_filters.contains(&name.as_str()));
            if takes {
                query.filters.push((name.clone(), value.clone()));
            } else if strict {
                invalid.push(name.as_str());
            }
        }
        if !invalid.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Invalid filters {} are found in query options.",
                invalid.join(",")
            )));
        }
        if let Some(l) = get("limit") {
            let l = integer("limit", l)?;
            if l < 0 {
                return Err(ApiError::bad_request("limit param must be positive"));
            }
            limit = l.min(MAX_LIMIT);
        }
        query.page.limit = Some(limit);
        if let Some(o) = get("offset") {
            let o = integer("offset", o)?;
            if o < 0 {
                return Err(ApiError::bad_request("offset must be >= 0"));
            }
            query.page.offset = Some(o);
        }
        query.page.marker = get("marker").cloned();
        query.page.sort = sort_keys(get("sort"), get("sort_key"), get("sort_dir"))?;
        Ok(ListRequest {
            query,
            limit: Some(limit),
            params: params.to_vec(),
        })
    }

    /// The database's answer, with a marker that names nothing as Cinder's 404.
    pub fn rows<T>(
        &self,
        spec: &ListSpec,
        r: Result<Vec<T>, ListError>,
    ) -> Result<Vec<T>, ApiError> {
        r.map_err(|e| match e {
            ListError::MarkerNotFound(m) => {
                ApiError::not_found(format!("{} {m} could not be found.", spec.noun))
            }
            other => other.into(),
        })
    }

    /// `{collection}_links` with the "next" link, when the page is full.
    pub fn links(
        &self,
        ctx: &Ctx,
        spec: &ListSpec,
        last_id: Option<&str>,
        count: usize,
    ) -> Option<(String, Value)> {
        let path = spec.link_path?;
        let last = last_id?;
        let limit = self.limit?;
        if (count as i64) < limit || limit == 0 {
            return None;
        }
        let mut params: Vec<(&str, &str)> = self
            .params
            .iter()
            .filter(|(k, _)| k != "marker")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        params.push(("marker", last));
        let query = serde_urlencoded::to_string(&params).unwrap_or_default();
        Some((
            format!("{}_links", spec.collection),
            json!([{"href": format!("{}?{query}", ctx.link(path)), "rel": "next"}]),
        ))
    }
}

/// Sort keys and directions from `sort=k1:d1,k2` or `sort_key`/`sort_dir`.
pub(super) fn sort_keys(
    sort: Option<&String>,
    sort_key: Option<&String>,
    sort_dir: Option<&String>,
) -> Result<Vec<(String, SortDir)>, ApiError> {
    let dir = |d: &str| match d {
        "asc" => Ok(SortDir::Asc),
        "desc" => Ok(SortDir::Desc),
        _ => Err(ApiError::bad_request(
            "Invalid input received: Unknown sort direction, must be 'desc' or 'asc'.",
        )),
    };
    match (sort, sort_key, sort_dir) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ApiError::bad_request(
            "The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used with the 'sort' parameter.",
        )),
        (Some(sort), None, None) => sort
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|part| {
                let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
                Ok((k.trim().to_string(), dir(d.trim())?))
            })
            .collect(),
        (None, key, d) => {
            if key.is_none() && d.is_none() {
                return Ok(Vec::new());
            }
            let key = key.map_or("created_at", |k| k.as_str());
            Ok(vec![(
                key.to_string(),
                dir(d.map_or("desc", |d| d.as_str()))?,
            )])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(admin: bool, minor: u32) -> Ctx {
        Ctx {
            user_id: if admin {
                "admin".into()
            } else {
                "alice".into()
            },
            project_id: "p1".into(),
            role: if admin {
                crate::auth::Role::Admin
            } else {
                crate::auth::Role::Member
            },
            is_admin: admin,
            version: Microversion(3, minor),
            request_id: "req".into(),
            base: "http://h".into(),
        }
    }

    const SPEC: ListSpec = ListSpec {
        link_path: Some("volumes/detail"),
        collection: "volumes",
        noun: "Volume",
        user_filters: &["name", "status"],
        listing: &crate::db::VOLUME_LIST,
        paging_since: 0,
    };

    fn parse(admin: bool, minor: u32, q: &[(&str, &str)]) -> Result<ListRequest, ApiError> {
        let q: Vec<(String, String)> = q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListRequest::parse(&ctx(admin, minor), &q, &SPEC)
    }

    fn scope(admin: bool, q: &[(&str, &str)]) -> Scope {
        parse(admin, 0, q).unwrap().query.scope
    }

    #[test]
    fn all_tenants_and_project_id_mean_the_same_on_every_list() {
        let own = Scope::Project("p1".into());
        assert_eq!(scope(true, &[]), own);
        assert_eq!(scope(true, &[("all_tenants", "1")]), Scope::All);
        assert_eq!(scope(true, &[("all_tenants", "True")]), Scope::All);
        assert_eq!(scope(true, &[("all_tenants", "false")]), own);
        assert_eq!(scope(true, &[("all_tenants", "0")]), own);
        assert_eq!(
            scope(true, &[("all_tenants", "yes"), ("project_id", "p9")]),
            Scope::Project("p9".into())
        );
        // Without all_tenants an administrator's project_id does not widen the list.
        assert_eq!(scope(true, &[("project_id", "p9")]), own);
        // A user's all_tenants and (before 3.31) project_id change nothing.
        assert_eq!(scope(false, &[("all_tenants", "1")]), own);
        assert_eq!(
            scope(false, &[("all_tenants", "1"), ("project_id", "p9")]),
            own
        );
        let e = parse(false, 31, &[("project_id", "p9")]).err().unwrap();
        assert_eq!(
            e.message,
            "Invalid filters project_id are found in query options."
        );
        let e = parse(true, 0, &[("all_tenants", "maybe")]).err().unwrap();
        assert_eq!(
            e.message,
            "Value 'maybe' for 'all_tenants' is not a boolean."
        );
    }

    #[test]
    fn filters_are_the_lists_own() {
        let r = parse(false, 0, &[("name", "a"), ("colour", "red"), ("host", "h")]).unwrap();
        assert_eq!(r.query.filters, [("name".to_string(), "a".to_string())]);
        let e = parse(
            false,
            31,
            &[("name", "a"), ("colour", "red"), ("host", "h")],
        )
        .err()
        .unwrap();
        assert_eq!(
            e.message,
            "Invalid filters colour,host are found in query options."
        );
        let r = parse(true, 31, &[("host", "h")]).unwrap();
        assert_eq!(r.query.filters, [("host".to_string(), "h".to_string())]);
    }

    #[test]
    fn paging_and_sorting_follow_cinder() {
        let r = parse(false, 0, &[]).unwrap();
        assert_eq!(r.query.page.limit, Some(MAX_LIMIT));
        assert!(r.query.page.sort.is_empty());
        let r = parse(false, 0, &[("limit", "5000")]).unwrap();
        assert_eq!(r.query.page.limit, Some(MAX_LIMIT));
        for (q, msg) in [
            (("limit", "x"), "limit param must be an integer"),
            (("limit", "-1"), "limit param must be positive"),
            (("offset", "-1"), "offset must be >= 0"),
            (("sort", "name:up"), "Unknown sort direction"),
        ] {
            let e = parse(false, 0, &[q]).err().unwrap();
            assert!(e.message.contains(msg), "{q:?}: {}", e.message);
        }
        let e = parse(false, 0, &[("sort", "name"), ("sort_key", "size")])
            .err()
            .unwrap();
        assert!(
            e.message
                .contains("cannot be used with the 'sort' parameter")
        );
        let r = parse(false, 0, &[("sort", "name:asc,size")]).unwrap();
        assert_eq!(
            r.query.page.sort,
            [
                ("name".to_string(), SortDir::Asc),
                ("size".to_string(), SortDir::Desc)
            ]
        );
        let r = parse(false, 0, &[("sort_key", "size"), ("sort_dir", "asc")]).unwrap();
        assert_eq!(r.query.page.sort, [("size".to_string(), SortDir::Asc)]);
    }

    #[test]
    fn the_next_link_repeats_the_query_with_the_new_marker() {
        let r = parse(
            false,
            0,
            &[("limit", "2"), ("name", "a b"), ("marker", "m0")],
        )
        .unwrap();
        let (key, links) = r.links(&ctx(false, 0), &SPEC, Some("m2"), 2).unwrap();
        assert_eq!(key, "volumes_links");
        assert_eq!(
            links[0]["href"],
            "http://h/v3/p1/volumes/detail?limit=2&name=a+b&marker=m2"
        );
        assert!(r.links(&ctx(false, 0), &SPEC, Some("m1"), 1).is_none());
    }
}
