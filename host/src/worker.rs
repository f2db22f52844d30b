//! Background work behind one trait, as Garage's background runner: the job runner, the
//! stats poller, each swap's probation watcher and whatever comes later. Every worker is
//! driven by the same loop, reports its state (`GET /ashlar/v1/workers`), and is stopped
//! the same way when the host shuts down.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

/// How long past the deadline a stopping worker may take to finish its drain's own
/// bookkeeping (logging what it leaves behind).
const DRAIN_MARGIN: Duration = Duration::from_millis(500);

/// What a worker's `work` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerState {
    /// It did something and may have more: call `work` again.
    Busy,
    /// Nothing to do now: wait for work.
    Idle,
    /// It is finished for good.
    Done,
}

/// A worker's own account of itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStatus {
    /// One line: what it has done and is doing.
    pub detail: String,
    /// Units of work waiting or running, when it has a queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<u64>,
}

/// A piece of background work.
pub trait Worker: Send + 'static {
    fn name(&self) -> String;

    fn status(&self) -> WorkerStatus;

    /// Does the work that is ready. The host may drop the future at any `.await` when it
    /// stops, so work must be safe to abandon there (durable work is in the database).
    fn work(&mut self) -> impl Future<Output = WorkerState> + Send;

    /// Waits until there may be work again.
    fn wait_for_work(&mut self) -> impl Future<Output = ()> + Send;

    /// Once the host stops: let in-flight work finish until `deadline`, then leave the
    /// rest for recovery on the next start.
    fn drain(&mut self, deadline: Instant) -> impl Future<Output = ()> + Send {
        let _ = deadline;
        async {}
    }
}

/// What `GET /ashlar/v1/workers` shows of one worker.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerInfo {
    pub id: u64,
    pub name: String,
    /// `busy`, `idle`, `done`, or `stopped` once the host stopped it.
    pub state: String,
    /// Calls of `work` so far.
    pub iterations: u64,
    #[serde(flatten)]
    pub status: WorkerStatus,
    pub started_at: String,
}

/// Every background worker of this host, and the signal that stops them.
pub struct Workers {
    stop: watch::Sender<bool>,
    next_id: AtomicU64,
    infos: Mutex<BTreeMap<u64, WorkerInfo>>,
    tasks: Mutex<tokio::task::JoinSet<()>>,
    /// How long each stopping worker may drain; set when the stop is asked.
    deadline: Mutex<Option<Instant>>,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            stop: watch::channel(false).0,
            next_id: AtomicU64::new(1),
            infos: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(tokio::task::JoinSet::new()),
            deadline: Mutex::new(None),
        }
    }
}

impl Workers {
    pub fn new() -> Arc<Workers> {
        Arc::new(Workers::default())
    }

    /// Starts `worker` on its own task; it runs until it is done or the host stops.
    pub fn spawn<W: Worker>(self: &Arc<Self>, mut worker: W) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = WorkerInfo {
            id,
            name: worker.name(),
            state: "idle".into(),
            iterations: 0,
            status: worker.status(),
            started_at: crate::db::time::now(),
        };
        tracing::info!(worker = %info.name, "worker started");
        self.infos.lock().expect("workers lock").insert(id, info);
        let me = self.clone();
        let mut stop = self.stop.subscribe();
        self.tasks.lock().expect("workers lock").spawn(async move {
            let mut finished = false;
            loop {
                if *stop.borrow() {
                    break;
                }
                me.update(id, &worker, "busy", false);
                let state = tokio::select! {
                    s = worker.work() => s,
                    _ = stop.changed() => break,
                };
                me.update(id, &worker, state_name(state), true);
                match state {
                    WorkerState::Busy => continue,
                    WorkerState::Done => {
                        finished = true;
                        break;
                    }
                    WorkerState::Idle => {
                        tokio::select! {
                            _ = worker.wait_for_work() => {}
                            _ = stop.changed() => break,
                        }
                    }
                }
            }
            if !finished {
                let deadline = me
                    .deadline
                    .lock()
                    .expect("workers lock")
                    .unwrap_or_else(Instant::now);
                worker.drain(deadline).await;
                me.update(id, &worker, "stopped", false);
            }
        });
    }

    fn update<W: Worker>(&self, id: u64, worker: &W, state: &str, counted: bool) {
        if let Some(info) = self.infos.lock().expect("workers lock").get_mut(&id) {
            info.state = state.into();
            info.status = worker.status();
            if counted {
                info.iterations += 1;
            }
        }
    }

    /// Every worker, running or finished, oldest first.
    pub fn list(&self) -> Vec<WorkerInfo> {
        self.infos
            .lock()
            .expect("workers lock")
            .values()
            .cloned()
            .collect()
    }

    /// Asks every worker to stop and waits, until `deadline` at most, for them to drain.
    /// Returns how many were still running at the deadline (their tasks are dropped).
    pub async fn stop(&self, deadline: Instant) -> usize {
        *self.deadline.lock().expect("workers lock") = Some(deadline);
        let _ = self.stop.send(true);
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("workers lock"));
        // Each worker's drain ends by the deadline; the margin lets it say so.
        let drained = tokio::time::timeout_at((deadline + DRAIN_MARGIN).into(), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_ok() { 0 } else { tasks.len() }
    }

    /// Whether the host is stopping.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }
}

/// `GET /ashlar/v1/workers` as the `WORKERS` section of `ashlar plugin list`.
pub fn render(body: &serde_json::Value) -> String {
    let mut out = format!(
        "{:<44} {:<8} {:>10}  {}\n",
        "WORKER", "STATE", "ITERATIONS", "STATUS"
    );
    for w in body["workers"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<44} {:<8} {:>10}  {}\n",
            w["name"].as_str().unwrap_or(""),
            w["state"].as_str().unwrap_or(""),
            w["iterations"],
            w["detail"].as_str().unwrap_or("")
        ));
    }
    out
}

fn state_name(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Busy => "busy",
        WorkerState::Idle => "idle",
        WorkerState::Done => "done",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts to `n`, one step per `work`, then is done; `drain` records that it ran.
    struct Counter {
        n: u64,
        at: u64,
        drained: Arc<AtomicU64>,
        gate: watch::Receiver<u64>,
    }

    impl Worker for Counter {
        fn name(&self) -> String {
            format!("counter-{}", self.n)
        }
        fn status(&self) -> WorkerStatus {
            WorkerStatus {
                detail: format!("at {}", self.at),
                queue: Some(self.n - self.at),
            }
        }
        async fn work(&mut self) -> WorkerState {
            if self.at == self.n {
                return WorkerState::Done;
            }
            self.at += 1;
            WorkerState::Idle
        }
        async fn wait_for_work(&mut self) {
            let _ = self.gate.changed().await;
        }
        async fn drain(&mut self, _deadline: Instant) {
            self.drained.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn wait_until(workers: &Workers, what: impl Fn(&[WorkerInfo]) -> bool) {
        loop {
            if what(&workers.list()) {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn the_list_section_has_a_row_per_worker() {
        let body = serde_json::json!({"workers": [
            {"id": 1, "name": "job-runner", "state": "idle", "iterations": 12,
             "detail": "0 running, 6 done, 0 failed", "queue": 0, "started_at": "t"},
            {"id": 2, "name": "stats-poller", "state": "busy", "iterations": 3,
             "detail": "2 polls, every 60 s", "started_at": "t"},
        ]});
        let text = render(&body);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("WORKER"), "{text}");
        assert!(
            lines[1].starts_with("job-runner")
                && lines[1].contains(" idle ")
                && lines[1].contains(" 12 ")
                && lines[1].ends_with("6 done, 0 failed"),
            "{text}"
        );
        assert!(
            lines[2].contains("stats-poller") && lines[2].contains(" busy "),
            "{text}"
        );
    }

    #[tokio::test]
    async fn workers_report_their_state_and_stop_on_request() {
        let workers = Workers::new();
        let drained = Arc::new(AtomicU64::new(0));
        let (gate, opened) = watch::channel(0);
        for n in [1, 5] {
            workers.spawn(Counter {
                n,
                at: 0,
                drained: drained.clone(),
                gate: opened.clone(),
            });
        }
        // Each takes one step and waits; once woken the first is done, the second takes
        // its second step and waits again.
        wait_until(&workers, |l| l.iter().all(|w| w.iterations == 1)).await;
        gate.send(1).unwrap();
        wait_until(&workers, |l| {
            l[0].state == "done" && l[1].iterations == 2 && l[1].state == "idle"
        })
        .await;
        let list = workers.list();
        assert_eq!(list[0].name, "counter-1");
        assert_eq!(list[0].status.queue, Some(0));
        assert_eq!(list[1].status.detail, "at 2");

        let left = workers.stop(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(left, 0);
        assert!(workers.stopping());
        let list = workers.list();
        assert_eq!(list[1].state, "stopped");
        // Only the worker that was stopped drains; the finished one had nothing left.
        assert_eq!(drained.load(Ordering::Relaxed), 1);
    }
}
