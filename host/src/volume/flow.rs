//! Flows of tasks with `execute` and `revert`, as Cinder's taskflow flows: when a task
//! fails, it and every task before it revert, newest first, each told why the flow failed.

use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Task<C: Send, E>: Send + Sync {
    fn name(&self) -> &'static str;
    fn execute<'a>(&'a self, ctx: &'a mut C) -> BoxFuture<'a, Result<(), E>>;
    /// Undoes what `execute` may have done, even partly, knowing the error that failed the
    /// flow. Must tolerate nothing to undo.
    fn revert<'a>(&'a self, _ctx: &'a mut C, _error: &'a E) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Runs `tasks` in order; on the first failure reverts it and those before it.
pub async fn run<C: Send, E: std::fmt::Display>(
    flow: &str,
    tasks: &[&dyn Task<C, E>],
    ctx: &mut C,
) -> Result<(), E> {
    for (i, task) in tasks.iter().enumerate() {
        if let Err(e) = task.execute(ctx).await {
            tracing::warn!(flow, task = task.name(), "task failed, reverting: {e}");
            for done in tasks[..=i].iter().rev() {
                done.revert(ctx, &e).await;
            }
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Step(&'static str, bool);

    impl Task<Vec<String>, String> for Step {
        fn name(&self) -> &'static str {
            self.0
        }
        fn execute<'a>(&'a self, ctx: &'a mut Vec<String>) -> BoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                ctx.push(format!("do {}", self.0));
                if self.1 {
                    Ok(())
                } else {
                    Err(format!("{} failed", self.0))
                }
            })
        }
        fn revert<'a>(&'a self, ctx: &'a mut Vec<String>, error: &'a String) -> BoxFuture<'a, ()> {
            Box::pin(async move { ctx.push(format!("undo {} ({error})", self.0)) })
        }
    }

    #[tokio::test]
    async fn failure_reverts_newest_first() {
        let (a, b, c) = (Step("a", true), Step("b", false), Step("c", true));
        let mut log = Vec::new();
        let err = run("t", &[&a, &b, &c], &mut log).await.unwrap_err();
        assert_eq!(err, "b failed");
        assert_eq!(
            log,
            ["do a", "do b", "undo b (b failed)", "undo a (b failed)"]
        );
        let mut log = Vec::new();
        run("t", &[&a, &c], &mut log).await.unwrap();
        assert_eq!(log, ["do a", "do c"]);
    }
}
