//! Pod deletion cost: keeps this pod's `controller.kubernetes.io/pod-deletion-cost`
//! annotation equal to the number of live sessions it carries, so that when the
//! Deployment scales down the ReplicaSet controller deletes the emptiest pods first and
//! the busiest keep their calls.
//!
//! Owns one periodic task ([`PodDeletionCost::run`]) that patches its own Pod object with
//! a JSON merge patch, at most once per tick and only when the count changed. It never
//! reads or writes any other object, never touches a media path, and never stops the
//! server: every failure is a log line.
//!
//! - **Where.** Only inside Kubernetes: `KUBERNETES_SERVICE_HOST` set (every pod has it)
//!   and the pod's name and namespace in `POD_NAME` and `POD_NAMESPACE` (the Downward
//!   API, as in `k8s/base/deployment.yaml`). Elsewhere nothing runs and nothing is
//!   logged ([`PodRef::from_env`]); in a pod without those two variables, one line says
//!   so. `--pod-deletion-cost off` turns it all off.
//! - **Permission.** The pod's ServiceAccount needs `patch` on `pods` in its namespace
//!   (`k8s/base/rbac.yaml`). A 403 is logged once, naming that permission, and the task
//!   ends: without the Role nothing will change until the pod is recreated, so retrying
//!   would only fill the log.
//! - **Other errors** (API server unreachable, 5xx, a pod not found): a warning for the
//!   first failure of a streak, the same value tried again at the next tick, and a line
//!   when a write succeeds again.
//! - **Drain.** The task ends when the drain starts, writing nothing more. SIGTERM reaches
//!   the server once its Pod is being deleted (rolling update, scale-down, node drain),
//!   and the ReplicaSet controller never picks a terminating pod to delete, so its cost
//!   no longer matters; lowering it to 0 would only cost API calls. (A container
//!   restarted in place starts a new process, which writes its count afresh.)
//!
//! The value is the live WHIP + WHEP session count ([`crate::metrics::Meters`]),
//! clamped to `0..=i32::MAX` (the annotation is an int32).

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use tracing::{debug, info, warn};

/// The annotation the ReplicaSet controller reads when it picks pods to delete.
pub const ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// How often the count is compared with the value last written: a scale-down decision
/// takes minutes (the HPA waits 10 minutes), so 10 s is fresh enough and costs at most
/// six small PATCHes a minute per pod, only while the count moves.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Longest wait for one PATCH (kube's default is 295 s): a stuck request must not keep
/// the next ticks from trying again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `fieldManager` the API server records for our writes.
const FIELD_MANAGER: &str = "switchboard";

/// This pod: where its Pod object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `metadata.name` (`POD_NAME`).
    pub name: String,
    /// `metadata.namespace` (`POD_NAMESPACE`).
    pub namespace: String,
}

impl PodRef {
    /// This pod, when the process runs in one: `KUBERNETES_SERVICE_HOST`, `POD_NAME` and
    /// `POD_NAMESPACE` are all set and not empty. `None` elsewhere.
    pub fn from_env() -> Option<PodRef> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`PodRef::from_env`] over any source of variables (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<PodRef> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        get("KUBERNETES_SERVICE_HOST")?;
        Some(PodRef {
            name: get("POD_NAME")?,
            namespace: get("POD_NAMESPACE")?,
        })
    }
}

/// Why [`PodDeletionCost::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The shutdown future resolved (the drain started).
    Shutdown,
    /// The API server answered 403: the ServiceAccount may not patch pods.
    Forbidden,
}

/// Keeps [`ANNOTATION`] on this pod equal to its session count. See the
/// [module documentation](self).
pub struct PodDeletionCost {
    pods: Api<Pod>,
    pod: PodRef,
    sessions: Arc<AtomicI64>,
    interval: Duration,
    /// The value the API server last accepted.
    written: Option<i32>,
    /// The last write failed (for one warning per streak).
    failing: bool,
}

impl PodDeletionCost {
    /// An updater of `pod` through `client`, reading the live session count from
    /// `sessions` every [`INTERVAL`].
    pub fn new(client: Client, pod: PodRef, sessions: Arc<AtomicI64>) -> Self {
        PodDeletionCost {
            pods: Api::namespaced(client, &pod.namespace),
            pod,
            sessions,
            interval: INTERVAL,
            written: None,
            failing: false,
        }
    }

    /// Tick every `interval` instead of [`INTERVAL`] (tests).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// A client for the API server this pod runs under (in-cluster configuration: the
    /// `KUBERNETES_SERVICE_*` variables and the mounted ServiceAccount token and CA).
    pub fn incluster_client() -> Result<Client, String> {
        let mut config = kube::Config::incluster().map_err(|e| e.to_string())?;
        config.read_timeout = Some(REQUEST_TIMEOUT);
        config.write_timeout = Some(REQUEST_TIMEOUT);
        Client::try_from(config).map_err(|e| e.to_string())
    }

    /// Write the count now, then at every tick when it changed, until `shutdown`
    /// resolves or the API server answers 403.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Ended {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticks = tokio::time::interval(self.interval);
        // After a slow request, carry on from now rather than firing the missed ticks.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The first tick completes at once: the write at start.
            tokio::select! {
                biased;
                () = &mut shutdown => return Ended::Shutdown,
                _ = ticks.tick() => {}
            }
            let step = tokio::select! {
                biased;
                () = &mut shutdown => return Ended::Shutdown,
                step = self.step() => step,
            };
            if let Some(ended) = step {
                return ended;
            }
        }
    }

    /// One tick: write the count if it differs from the last value written.
    async fn step(&mut self) -> Option<Ended> {
        let cost = cost_of(self.sessions.load(Ordering::Relaxed));
        if self.written == Some(cost) {
            return None;
        }
        let (pod, namespace) = (&self.pod.name, &self.pod.namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        match self
            .pods
            .patch(pod, &params, &Patch::Merge(patch(cost)))
            .await
        {
            Ok(_) => {
                if self.failing {
                    info!(pod, namespace, cost, "{ANNOTATION} written again");
                    self.failing = false;
                } else {
                    debug!(pod, namespace, cost, "{ANNOTATION} written");
                }
                self.written = Some(cost);
                None
            }
            Err(kube::Error::Api(e)) if e.code == 403 => {
                warn!(
                    pod,
                    namespace,
                    error = %e.message,
                    "{ANNOTATION} not updated: the pod's ServiceAccount lacks `patch` on \
                     `pods` in namespace {namespace:?} (see k8s/base/rbac.yaml); \
                     not trying again"
                );
                Some(Ended::Forbidden)
            }
            Err(e) => {
                let e = describe(&e);
                if self.failing {
                    debug!(pod, namespace, error = %e, "{ANNOTATION} still not written");
                } else {
                    warn!(pod, namespace, error = %e, "{ANNOTATION} not written; retrying every tick");
                    self.failing = true;
                }
                None
            }
        }
    }
}

/// Start keeping this pod's deletion cost when running in Kubernetes (see
/// [`PodRef::from_env`]); do nothing, silently, elsewhere. A client that cannot be built
/// is one warning. The task ends with `shutdown` (see the module documentation on drain).
pub fn spawn_in_cluster(
    sessions: Arc<AtomicI64>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let Some(pod) = PodRef::from_env() else {
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            info!(
                "{ANNOTATION} not kept: set POD_NAME and POD_NAMESPACE from the Downward API \
                 (metadata.name, metadata.namespace)"
            );
        }
        return;
    };
    let client = match PodDeletionCost::incluster_client() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "{ANNOTATION} not kept: no Kubernetes client");
            return;
        }
    };
    info!(pod = %pod.name, namespace = %pod.namespace, "keeping {ANNOTATION} current");
    tokio::spawn(PodDeletionCost::new(client, pod, sessions).run(shutdown));
}

/// An error for the log: the API server's status in one line, or the transport error.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(r) => format!("{} {}: {}", r.code, r.reason, r.message),
        other => other.to_string(),
    }
}

/// The annotation's value for `sessions` live sessions: an int32, never negative.
pub fn cost_of(sessions: i64) -> i32 {
    // Lossless: clamped to the i32 range first.
    sessions.clamp(0, i64::from(i32::MAX)) as i32
}

/// The merge patch (RFC 7386) that sets the annotation and leaves every other one alone.
pub fn patch(cost: i32) -> serde_json::Value {
    serde_json::json!({ "metadata": { "annotations": { ANNOTATION: cost.to_string() } } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_a_non_negative_int32() {
        assert_eq!(cost_of(0), 0);
        assert_eq!(cost_of(17), 17);
        assert_eq!(cost_of(-3), 0);
        assert_eq!(cost_of(i64::from(i32::MAX) + 1), i32::MAX);
        assert_eq!(cost_of(i64::MAX), i32::MAX);
    }

    #[test]
    fn patch_sets_only_the_annotation_as_a_string() {
        assert_eq!(
            patch(42),
            serde_json::json!({
                "metadata": {
                    "annotations": { "controller.kubernetes.io/pod-deletion-cost": "42" }
                }
            })
        );
    }

    #[test]
    fn only_inside_kubernetes_with_name_and_namespace() {
        fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        }
        let full = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("POD_NAME", "switchboard-abc"),
            ("POD_NAMESPACE", "media"),
        ];
        assert_eq!(
            PodRef::from_vars(env(&full)),
            Some(PodRef {
                name: "switchboard-abc".into(),
                namespace: "media".into()
            })
        );
        assert_eq!(PodRef::from_vars(env(&full[1..])), None);
        assert_eq!(PodRef::from_vars(env(&full[..2])), None);
        assert_eq!(
            PodRef::from_vars(env(&[
                ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
                ("POD_NAME", ""),
                ("POD_NAMESPACE", "media"),
            ])),
            None
        );
    }
}
