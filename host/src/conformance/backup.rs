//! The checks of a backup driver: the object store under Cinder's chunked backup driver.
//! Containers are made idempotently; objects round-trip byte for byte (empty, binary,
//! several MiB), are replaced by a second put, are not-found when missing, and delete
//! twice; listings filter by prefix and page with a marker and a limit, in name order.
//!
//! Every object goes under a prefix of the run's own in the store's container; a second
//! container, `CONTAINER-conformance`, is made for the isolation check and left empty.

use std::sync::Arc;
use std::time::Instant;

use super::report::{Category, Outcome};
use super::runner::{
    Runner, health_check, not_found, required, sandbox_records, setup_checks, trapped,
};
use crate::driver::StoredObject;
use crate::runtime::{CallError, DriverPool};

use Category::{Cleanup, Objects, Sandbox};

pub struct Subject {
    pub driver: Arc<DriverPool>,
    /// The store's container (`[backup] container`).
    pub container: String,
    pub unprivileged: Result<Arc<DriverPool>, String>,
    pub ungranted_refused: Option<Result<String, String>>,
}

/// Runs a blocking store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    d: &Arc<DriverPool>,
    f: impl FnOnce(&DriverPool) -> Result<T, CallError> + Send + 'static,
) -> Result<T, CallError> {
    let d = d.clone();
    match tokio::task::spawn_blocking(move || f(&d)).await {
        Ok(r) => r,
        Err(e) => Err(CallError::Driver(crate::runtime::DriverFailure::Internal(
            format!("the call's thread failed: {e}"),
        ))),
    }
}

/// Bytes that are not all alike: every byte value, then a counter.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

struct Store<'a> {
    d: &'a Arc<DriverPool>,
    container: String,
    prefix: String,
}

impl Store<'_> {
    fn name(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }
    async fn put(&self, n: &str, data: Vec<u8>) -> Result<(), CallError> {
        let (c, n) = (self.container.clone(), self.name(n));
        blocking(self.d, move |d| d.put_object(&c, &n, &data)).await
    }
    async fn get(&self, n: &str) -> Result<Vec<u8>, CallError> {
        let (c, n) = (self.container.clone(), self.name(n));
        blocking(self.d, move |d| d.get_object(&c, &n)).await
    }
    async fn delete(&self, n: &str) -> Result<(), CallError> {
        let (c, n) = (self.container.clone(), self.name(n));
        blocking(self.d, move |d| d.delete_object(&c, &n)).await
    }
    async fn list(
        &self,
        sub: &str,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredObject>, CallError> {
        let (c, p) = (self.container.clone(), self.name(sub));
        let marker = marker.map(str::to_string);
        blocking(self.d, move |d| {
            d.list_objects(&c, &p, marker.as_deref(), limit)
        })
        .await
    }
    /// Every object under `sub`, page by page of `limit`.
    async fn list_all(
        &self,
        sub: &str,
        limit: u32,
    ) -> Result<(Vec<StoredObject>, usize), CallError> {
        let mut all: Vec<StoredObject> = Vec::new();
        let mut pages = 0;
        loop {
            let marker = all.last().map(|o| o.name.clone());
            let page = self.list(sub, marker.as_deref(), limit).await?;
            pages += 1;
            if page.is_empty() || pages > 10_000 {
                return Ok((all, pages));
            }
            let short = page.len() < limit as usize;
            all.extend(page);
            if short {
                return Ok((all, pages));
            }
        }
    }
}

async fn round_trip(st: &Store<'_>, n: &str, data: Vec<u8>) -> Outcome {
    let len = data.len();
    if let Err(e) = st.put(n, data.clone()).await {
        return Outcome::fail(format!("put_object ({len} bytes): {e}"));
    }
    match st.get(n).await {
        Ok(got) if got == data => Outcome::pass(format!("{len} bytes round-trip")),
        Ok(got) => Outcome::fail(format!(
            "put {len} bytes, got back {} different bytes",
            got.len()
        )),
        Err(e) => Outcome::fail(format!("get_object: {e}")),
    }
}

pub async fn run(s: &Subject, r: &mut Runner) {
    let d = &s.driver;
    setup_checks(r, d, Instant::now()).await;
    health_check(r, "objects.health", d).await;
    let container = s.container.clone();
    r.run("objects.put_container", Objects, true, async {
        let c = container.clone();
        required(
            "put_container",
            &blocking(d, move |d| d.put_container(&c)).await,
        )
    })
    .await;
    r.run("objects.put_container.idempotent", Objects, true, async {
        let c = container.clone();
        required(
            "a repeated put_container (the container exists)",
            &blocking(d, move |d| d.put_container(&c)).await,
        )
    })
    .await;
    let st = Store {
        d,
        container: container.clone(),
        prefix: format!("ashlar-conformance-{}/", uuid::Uuid::new_v4().simple()),
    };
    r.run(
        "objects.round_trip",
        Objects,
        true,
        round_trip(&st, "small", b"ashlar conformance".to_vec()),
    )
    .await;
    r.run(
        "objects.round_trip.empty",
        Objects,
        true,
        round_trip(&st, "empty", Vec::new()),
    )
    .await;
    r.run(
        "objects.round_trip.binary",
        Objects,
        true,
        round_trip(&st, "binary", (0..=255u8).cycle().take(4096).collect()),
    )
    .await;
    r.run(
        "objects.round_trip.large",
        Objects,
        true,
        round_trip(&st, "large", pattern((8 << 20) + 13, 7)),
    )
    .await;
    r.run(
        "objects.names_with_slashes",
        Objects,
        true,
        round_trip(&st, "a/b/c/chunk-00001", pattern(1000, 3)),
    )
    .await;
    r.run("objects.overwrite", Objects, true, async {
        let _ = st.put("over", pattern(5000, 1)).await;
        round_trip(&st, "over", pattern(5000, 2)).await
    })
    .await;
    r.run(
        "objects.overwrite.shorter",
        Objects,
        true,
        round_trip(&st, "over", pattern(10, 9)),
    )
    .await;
    r.run("objects.get.missing", Objects, true, async {
        match st.get("never-put").await {
            Err(e) if not_found(&e) => Outcome::pass(format!("not-found: {e}")),
            Err(e) => Outcome::fail(format!(
                "a missing object must be not-found (the engine relies on it), got: {e}"
            )),
            Ok(b) => Outcome::fail(format!("a missing object answered {} bytes", b.len())),
        }
    })
    .await;
    r.run("objects.delete", Objects, true, async {
        match st.delete("small").await {
            Ok(()) => match st.get("small").await {
                Err(e) if not_found(&e) => Outcome::pass("deleted; a get then says not-found"),
                Err(e) => Outcome::fail(format!("a get after delete: {e}")),
                Ok(_) => Outcome::fail("the object is still there after delete_object"),
            },
            Err(e) => Outcome::fail(format!("delete_object: {e}")),
        }
    })
    .await;
    r.run("objects.delete.idempotent", Objects, true, async {
        match st.delete("small").await {
            Ok(()) => Outcome::pass("deleting a deleted object succeeds"),
            Err(e) => Outcome::fail(format!("deleting a deleted object: {e}")),
        }
    })
    .await;
    r.run("objects.delete.never_put", Objects, true, async {
        match st.delete("never-put").await {
            Ok(()) => Outcome::pass("deleting a missing object succeeds"),
            Err(e) => Outcome::fail(format!("deleting a missing object: {e}")),
        }
    })
    .await;

    // Listings: ten objects under `list/`, two under `list/sub/`, one under `listing`.
    let names: Vec<String> = (0..10).map(|i| format!("list/obj-{i:03}")).collect();
    let mut setup = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if let Err(e) = st.put(n, pattern(100 + i, i as u8)).await {
            setup.push(e.to_string());
        }
    }
    for n in ["list/sub/x", "list/sub/y", "listing"] {
        if let Err(e) = st.put(n, vec![1, 2, 3]).await {
            setup.push(e.to_string());
        }
    }
    let listed = st.list_all("list/", 1000).await;
    r.run("objects.list", Objects, true, async {
        if !setup.is_empty() {
            return Outcome::fail(format!("put_object: {}", setup.join("; ")));
        }
        match &listed {
            Ok((l, _)) if l.len() == 12 => Outcome::pass("12 objects listed under the prefix"),
            Ok((l, _)) => Outcome::fail(format!(
                "listed {} objects under the prefix, 12 were put: {:?}",
                l.len(),
                l.iter().map(|o| o.name.as_str()).collect::<Vec<_>>()
            )),
            Err(e) => Outcome::fail(format!("list_objects: {e}")),
        }
    })
    .await;
    r.record(
        "objects.list.sizes",
        Objects,
        true,
        match &listed {
            Ok((l, _)) => {
                let wrong: Vec<String> = l
                    .iter()
                    .filter_map(|o| {
                        let i = names.iter().position(|n| st.name(n) == o.name)?;
                        (o.size != (100 + i) as u64)
                            .then(|| format!("{} is {} not {}", o.name, o.size, 100 + i))
                    })
                    .collect();
                Outcome::check(
                    wrong.is_empty(),
                    if wrong.is_empty() {
                        "sizes as put".to_string()
                    } else {
                        wrong.join(", ")
                    },
                )
            }
            Err(e) => Outcome::fail(format!("list_objects: {e}")),
        },
        Instant::now(),
    );
    r.record(
        "objects.list.sorted",
        Objects,
        true,
        match &listed {
            Ok((l, _)) => Outcome::check(
                l.windows(2).all(|w| w[0].name < w[1].name),
                "names in ascending order",
            ),
            Err(e) => Outcome::fail(format!("list_objects: {e}")),
        },
        Instant::now(),
    );
    r.run("objects.list.prefix", Objects, true, async {
        match st.list_all("list/sub/", 1000).await {
            Ok((l, _)) if l.len() == 2 => {
                Outcome::pass("only the two objects under the narrower prefix")
            }
            Ok((l, _)) => Outcome::fail(format!(
                "{} objects under list/sub/: {:?}",
                l.len(),
                l.iter().map(|o| &o.name).collect::<Vec<_>>()
            )),
            Err(e) => Outcome::fail(format!("list_objects: {e}")),
        }
    })
    .await;
    r.run("objects.list.paging", Objects, true, async {
        match (st.list_all("list/", 3).await, &listed) {
            (Ok((paged, pages)), Ok((whole, _))) => {
                let a: Vec<&str> = paged.iter().map(|o| o.name.as_str()).collect();
                let b: Vec<&str> = whole.iter().map(|o| o.name.as_str()).collect();
                Outcome::check(
                    a == b && pages >= 4,
                    format!(
                        "{} objects in {pages} pages of 3, as one listing gives them",
                        a.len()
                    ),
                )
            }
            (Err(e), _) => Outcome::fail(format!("list_objects: {e}")),
            (_, Err(e)) => Outcome::fail(format!("list_objects: {e}")),
        }
    })
    .await;
    r.run("objects.list.limit", Objects, true, async {
        match st.list("list/", None, 5).await {
            Ok(l) => Outcome::check(l.len() == 5, format!("limit 5 answers {}", l.len())),
            Err(e) => Outcome::fail(format!("list_objects: {e}")),
        }
    })
    .await;
    r.run("objects.list.marker_past_end", Objects, true, async {
        let past = format!("{}list/zzzz", st.prefix);
        match st.list("list/", Some(&past), 100).await {
            Ok(l) => Outcome::check(
                l.is_empty(),
                format!("a marker past the last name answers {} objects", l.len()),
            ),
            Err(e) => Outcome::fail(format!("list_objects: {e}")),
        }
    })
    .await;
    r.run("objects.list.empty_prefix", Objects, true, async {
        match st.list("nothing-here/", None, 100).await {
            Ok(l) => Outcome::check(
                l.is_empty(),
                format!("{} objects under a prefix nothing was put under", l.len()),
            ),
            Err(e) => Outcome::fail(format!("list_objects: {e}")),
        }
    })
    .await;
    r.run("objects.concurrent_puts", Objects, true, async {
        let calls = (0..8).map(|i| {
            let (d, c, n) = (d.clone(), container.clone(), st.name(&format!("par/{i}")));
            tokio::task::spawn_blocking(move || d.put_object(&c, &n, &pattern(64 << 10, i as u8)))
        });
        let mut failed = Vec::new();
        for (i, call) in calls.collect::<Vec<_>>().into_iter().enumerate() {
            match call.await {
                Ok(Ok(())) => match st.get(&format!("par/{i}")).await {
                    Ok(b) if b == pattern(64 << 10, i as u8) => {}
                    Ok(_) => failed.push(format!("par/{i}: different bytes")),
                    Err(e) => failed.push(format!("par/{i}: {e}")),
                },
                Ok(Err(e)) => failed.push(format!("par/{i}: {e}")),
                Err(e) => failed.push(format!("par/{i}: {e}")),
            }
        }
        Outcome::check(
            failed.is_empty(),
            if failed.is_empty() {
                "eight puts at once, each read back whole".into()
            } else {
                failed.join("; ")
            },
        )
    })
    .await;
    r.run("objects.containers_are_separate", Objects, false, async {
        let other = format!("{container}-conformance");
        let o = other.clone();
        if let Err(e) = blocking(d, move |d| d.put_container(&o)).await {
            return Outcome::fail(format!("put_container {other}: {e}"));
        }
        let (o, n) = (other.clone(), st.name("binary"));
        match blocking(d, move |d| d.get_object(&o, &n)).await {
            Err(e) if not_found(&e) => Outcome::pass(format!(
                "an object of {container} is not in {other} (left empty)"
            )),
            Err(e) => Outcome::fail(format!("get_object in another container: {e}")),
            Ok(_) => Outcome::fail(format!("an object of {container} is readable in {other}")),
        }
    })
    .await;

    // The sandbox.
    sandbox_records(r, d, s.ungranted_refused.as_ref()).await;
    match &s.unprivileged {
        Ok(u) => {
            let (c, n) = (container.clone(), st.name("unprivileged"));
            let got = blocking(u, move |d| d.put_object(&c, &n, b"x")).await;
            r.record(
                "sandbox.no_capabilities.put_object",
                Sandbox,
                true,
                match &got {
                    Err(e) if trapped(e) => Outcome::fail(format!("the driver trapped: {e}")),
                    Err(e) => Outcome::pass(format!("put_object fails as a driver error: {e}")),
                    Ok(()) => Outcome::fail("put_object succeeded without any capability"),
                },
                Instant::now(),
            );
            let (c, n) = (container.clone(), st.name("list/obj-000"));
            let got = blocking(u, move |d| d.get_object(&c, &n)).await;
            r.record(
                "sandbox.no_capabilities.get_object",
                Sandbox,
                true,
                match &got {
                    Err(e) if trapped(e) => Outcome::fail(format!("the driver trapped: {e}")),
                    Err(e) => Outcome::pass(format!("get_object fails as a driver error: {e}")),
                    Ok(_) => Outcome::fail("get_object read an object without any capability"),
                },
                Instant::now(),
            );
        }
        Err(e) => {
            r.record(
                "sandbox.no_capabilities.put_object",
                Sandbox,
                true,
                Outcome::fail(e.clone()),
                Instant::now(),
            );
            r.not_run(
                "sandbox.no_capabilities.get_object",
                Sandbox,
                true,
                "the driver did not load without capabilities",
            );
        }
    }

    // Cleanup: every object under the run's prefix.
    let started = Instant::now();
    let outcome = match st.list_all("", 1000).await {
        Ok((all, _)) => {
            let mut failed = Vec::new();
            for o in &all {
                let (c, n) = (container.clone(), o.name.clone());
                if let Err(e) = blocking(d, move |d| d.delete_object(&c, &n)).await {
                    failed.push(format!("{}: {e}", o.name));
                }
            }
            match st.list_all("", 1000).await {
                Ok((left, _)) if left.is_empty() && failed.is_empty() => Outcome::pass(format!(
                    "{} object(s) deleted; nothing left under the run's prefix",
                    all.len()
                )),
                Ok((left, _)) => Outcome::fail(format!(
                    "{} object(s) left; {}",
                    left.len(),
                    failed.join("; ")
                )),
                Err(e) => Outcome::fail(format!("list_objects: {e}")),
            }
        }
        Err(e) => Outcome::fail(format!("list_objects: {e}")),
    };
    r.record("cleanup.deleted", Cleanup, true, outcome, started);
}
