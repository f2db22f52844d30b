//! Rendered views kept per resource revision. A list reads only ids and revisions, and
//! renders just the items that changed since it last rendered them for the same kind of
//! caller; the rest are copied as they were written.
//!
//! An entry is used only at the revision it was rendered at, so a stale view is never
//! served: the store bumps a row's revision whenever anything its view shows changes.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// A view as JSON text.
pub type Rendered = Arc<[u8]>;

/// Views by caller kind `K` (whatever of the request a view depends on), then by id.
/// Bounded by the bytes it holds: when full it starts again empty, which costs one
/// rendering per item and never a wrong answer.
pub struct ViewCache<K> {
    capacity: usize,
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    bytes: usize,
    views: HashMap<K, HashMap<String, (i64, Rendered)>>,
}

impl<K: Hash + Eq> ViewCache<K> {
    pub fn new(capacity: usize) -> Self {
        ViewCache {
            capacity,
            inner: Mutex::new(Inner {
                bytes: 0,
                views: HashMap::new(),
            }),
        }
    }

    /// Whether any view is kept for `kind`: when none is, a list is better read in full
    /// at once than as revisions first.
    pub fn has_any(&self, kind: &K) -> bool {
        let inner = self.inner.lock().expect("view cache poisoned");
        inner.views.get(kind).is_some_and(|v| !v.is_empty())
    }

    /// For each `(id, revision)`, its view for `kind` when rendered at that revision.
    pub fn get_many(&self, kind: &K, items: &[(String, i64)]) -> Vec<Option<Rendered>> {
        let inner = self.inner.lock().expect("view cache poisoned");
        let Some(views) = inner.views.get(kind) else {
            return vec![None; items.len()];
        };
        items
            .iter()
            .map(|(id, revision)| match views.get(id.as_str()) {
                Some((r, view)) if r == revision => Some(view.clone()),
                _ => None,
            })
            .collect()
    }

    /// Keeps `view` of `id` at `revision` for `kind`, unless a later revision is kept.
    pub fn put(&self, kind: &K, id: &str, revision: i64, view: Rendered)
    where
        K: Clone,
    {
        if view.len() > self.capacity {
            // Larger than the bound (or no cache at all): not kept, nothing dropped.
            return;
        }
        let mut inner = self.inner.lock().expect("view cache poisoned");
        if inner.bytes + view.len() > self.capacity {
            inner.views.clear();
            inner.bytes = 0;
        }
        if !inner.views.contains_key(kind) {
            inner.views.insert(kind.clone(), HashMap::new());
        }
        let views = inner.views.get_mut(kind).expect("inserted above");
        let old = match views.get_mut(id) {
            Some(entry) if entry.0 > revision => return,
            Some(entry) => Some(std::mem::replace(entry, (revision, view.clone())).1.len()),
            None => {
                views.insert(id.to_string(), (revision, view.clone()));
                None
            }
        };
        inner.bytes = inner.bytes + view.len() - old.unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Rendered {
        Arc::from(s.as_bytes())
    }

    fn got(c: &ViewCache<u8>, kind: u8, id: &str, revision: i64) -> Option<String> {
        c.get_many(&kind, &[(id.to_string(), revision)])[0]
            .as_ref()
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn a_view_is_served_only_at_its_revision_and_for_its_kind() {
        let c = ViewCache::new(1 << 20);
        c.put(&1, "a", 3, text("{\"v\":3}"));
        assert_eq!(got(&c, 1, "a", 3).as_deref(), Some("{\"v\":3}"));
        assert_eq!(
            got(&c, 1, "a", 4),
            None,
            "a later revision is not served an old view"
        );
        assert_eq!(
            got(&c, 2, "a", 3),
            None,
            "another kind of caller has its own views"
        );
        assert_eq!(got(&c, 1, "b", 3), None);
        c.put(&1, "a", 4, text("{\"v\":4}"));
        c.put(&1, "a", 3, text("{\"v\":3}"));
        assert_eq!(
            got(&c, 1, "a", 4).as_deref(),
            Some("{\"v\":4}"),
            "a late writer of an older revision does not replace a newer view"
        );
    }

    #[test]
    fn a_full_cache_starts_again_within_its_bound() {
        let c = ViewCache::new(10);
        c.put(&1, "a", 1, text("123456"));
        c.put(&1, "b", 1, text("1234"));
        assert!(got(&c, 1, "a", 1).is_some() && got(&c, 1, "b", 1).is_some());
        c.put(&1, "c", 1, text("12"));
        assert_eq!(got(&c, 1, "a", 1), None);
        assert_eq!(got(&c, 1, "c", 1).as_deref(), Some("12"));
        c.put(&1, "d", 1, text("12345678901"));
        assert_eq!(
            got(&c, 1, "d", 1),
            None,
            "a view larger than the bound is not kept"
        );
        c.put(&1, "c", 2, text("1234567"));
        assert_eq!(
            c.inner.lock().unwrap().bytes,
            7,
            "a replaced view's bytes are freed"
        );
    }
}
