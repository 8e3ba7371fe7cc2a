//! Alert delivery: the only crate that knows PagerDuty, Slack and Alertmanager payloads.
//!
//! The caller hands over the desired state of every alert rule ([`RuleSnapshot`]) after each
//! evaluation; [`Notifier::reconcile`] decides what to send by comparing it with the ledger of what
//! was last notified, which lives in the data directory. That makes delivery level-triggered: a
//! restart does not re-page an alert that is still firing, and a resolve that was due while the
//! server was down is sent once the engine knows the rule has really resolved.
//!
//! Each receiver has its own bounded queue and worker, so notifications to one receiver keep their
//! order (a resolve never overtakes its trigger) and a hanging receiver delays no other. Failed
//! attempts are retried with exponential backoff and full jitter on timeouts, connection errors,
//! 429 (honouring `Retry-After`) and 5xx, until a deadline; other 4xx answers are not retried.

pub mod payload;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Everything a receiver is told about one alert rule's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertNotice {
    pub slo: String,
    pub flow: String,
    /// The rule name (`fast_burn`, ...).
    pub alert: String,
    /// `SEV1` | `SEV2` | `SEV3`.
    pub severity: String,
    pub firing: bool,
    /// When this state was observed.
    pub time_ms: i64,
    /// When the rule started firing.
    pub since_ms: i64,
    pub objective_percent: f64,
    pub burn_long: Option<f64>,
    pub burn_short: Option<f64>,
    pub factor: f64,
    pub long_window: String,
    pub short_window: String,
    pub budget_remaining: Option<f64>,
    pub time_to_exhaustion_secs: Option<f64>,
    pub runbook_url: Option<String>,
    pub flow_health_url: Option<String>,
    #[serde(default)]
    pub test: bool,
}

impl AlertNotice {
    pub fn key(&self) -> String {
        format!("{}/{}", self.slo, self.alert)
    }
}

/// The engine's view of one rule after an evaluation.
#[derive(Debug, Clone)]
pub struct RuleSnapshot {
    pub notice: AlertNotice,
    /// A higher tier of the same SLO fires: no new page for this one.
    pub suppressed: bool,
    /// The engine's "not firing" can be trusted (its windows hold enough data since start).
    pub resolve_allowed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    PagerDuty {
        routing_key: String,
        url: String,
    },
    Slack {
        webhook_url: String,
    },
    Webhook {
        url: String,
        bearer_token: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    pub name: String,
    pub kind: ReceiverKind,
}

impl ReceiverConfig {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            ReceiverKind::PagerDuty { .. } => "pagerduty",
            ReceiverKind::Slack { .. } => "slack",
            ReceiverKind::Webhook { .. } => "webhook",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub receivers: Vec<ReceiverConfig>,
    /// Severity (`SEV1`...) → receiver names.
    pub routes: BTreeMap<String, Vec<String>>,
    pub attempt_timeout: Duration,
    /// Give up on a notification this long after its first attempt.
    pub deadline: Duration,
    pub queue_capacity: usize,
    /// slowburn's own URL, for Alertmanager's `externalURL`.
    pub external_url: String,
    /// Where the ledger of notified states is kept; `None` keeps it in memory only.
    pub ledger_path: Option<PathBuf>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// The default routes: SEV1 and SEV2 page (PagerDuty) and post to Slack; SEV3 goes to Slack only.
/// Generic webhooks, like an Alertmanager receiver, get everything.
pub fn default_routes(receivers: &[ReceiverConfig]) -> BTreeMap<String, Vec<String>> {
    let mut routes = BTreeMap::new();
    for sev in ["SEV1", "SEV2", "SEV3"] {
        let names = receivers
            .iter()
            .filter(|r| match r.kind {
                ReceiverKind::PagerDuty { .. } => sev != "SEV3",
                ReceiverKind::Slack { .. } | ReceiverKind::Webhook { .. } => true,
            })
            .map(|r| r.name.clone())
            .collect();
        routes.insert(sev.to_owned(), names);
    }
    routes
}

/// Called with (receiver, outcome) for every attempt outcome: `delivered`, `retried`,
/// `rejected` (a 4xx that is not retried), `expired` (deadline reached), `dropped`.
pub type Observer = Arc<dyn Fn(&str, &str) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read the notification ledger {path}: {message}")]
    Ledger { path: PathBuf, message: String },
    #[error("unknown receiver `{0}` in routes")]
    UnknownReceiver(String),
    #[error("building the HTTP client failed: {0}")]
    Client(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LedgerEntry {
    notice: Option<AlertNotice>,
    /// Receiver name → the notice's `time_ms` it has been handled for.
    handled: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    alerts: BTreeMap<String, LedgerEntry>,
}

struct Job {
    key: String,
    notice: AlertNotice,
}

struct Inner {
    config: NotifyConfig,
    client: reqwest::Client,
    queues: BTreeMap<String, mpsc::Sender<Job>>,
    ledger: Mutex<Ledger>,
    /// (receiver, key, time_ms) queued or in flight, so the redrive does not queue twice.
    pending: Mutex<HashSet<(String, String, i64)>>,
    observer: Observer,
}

#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: Option<u16>,
    pub body: String,
    pub error: Option<String>,
}

impl Answer {
    pub fn accepted(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.status, &self.error) {
            (Some(s), _) => write!(f, "HTTP {s} {}", self.body.trim()),
            (None, Some(e)) => write!(f, "{e}"),
            (None, None) => write!(f, "no answer"),
        }
    }
}

enum Verdict {
    Delivered,
    Retry,
    Reject,
}

fn verdict(kind: &ReceiverKind, a: &Answer) -> Verdict {
    match a.status {
        // Slack answers exactly 200 `ok`; anything else 2xx is not a Slack success.
        Some(200) => Verdict::Delivered,
        Some(s) if (200..300).contains(&s) && !matches!(kind, ReceiverKind::Slack { .. }) => {
            Verdict::Delivered
        }
        Some(429) => Verdict::Retry,
        Some(s) if s >= 500 => Verdict::Retry,
        Some(_) => Verdict::Reject,
        None => Verdict::Retry,
    }
}

impl Notifier {
    /// Starts one worker per receiver on `tracker`; they stop when `shutdown` is cancelled.
    pub fn start(
        config: NotifyConfig,
        observer: Observer,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Self, NotifyError> {
        for names in config.routes.values() {
            for n in names {
                if !config.receivers.iter().any(|r| &r.name == n) {
                    return Err(NotifyError::UnknownReceiver(n.clone()));
                }
            }
        }
        let ledger = match &config.ledger_path {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| NotifyError::Ledger {
                    path: path.clone(),
                    message: e.to_string(),
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
                Err(e) => {
                    return Err(NotifyError::Ledger {
                        path: path.clone(),
                        message: e.to_string(),
                    });
                }
            },
            None => Ledger::default(),
        };
        let client = reqwest::Client::builder()
            .timeout(config.attempt_timeout)
            .user_agent(concat!("slowburn/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Client(e.to_string()))?;
        let mut queues = BTreeMap::new();
        let mut receivers = Vec::new();
        for r in &config.receivers {
            let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
            queues.insert(r.name.clone(), tx);
            receivers.push((r.clone(), rx));
        }
        let inner = Arc::new(Inner {
            config,
            client,
            queues,
            ledger: Mutex::new(ledger),
            pending: Mutex::new(HashSet::new()),
            observer,
        });
        let notifier = Notifier { inner };
        for (receiver, rx) in receivers {
            tracker.spawn(notifier.clone().worker(receiver, rx, shutdown.clone()));
        }
        // Redrive: whatever the ledger says is not yet handled (after a restart, or a full queue).
        let redrive = notifier.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => redrive.redrive(),
                }
            }
        });
        Ok(notifier)
    }

    pub fn receivers(&self) -> &[ReceiverConfig] {
        &self.inner.config.receivers
    }

    fn routed(&self, severity: &str) -> Vec<String> {
        self.inner
            .config
            .routes
            .get(severity)
            .cloned()
            .unwrap_or_default()
    }

    /// Compares the engine's state of every rule with what was last notified, and queues what
    /// changed. Never blocks: a full queue leaves the work in the ledger for the redrive.
    pub fn reconcile(&self, snapshots: &[RuleSnapshot]) {
        let mut changed = false;
        let mut jobs = Vec::new();
        {
            let mut ledger = lock(&self.inner.ledger);
            for s in snapshots {
                let key = s.notice.key();
                let notified_firing = ledger
                    .alerts
                    .get(&key)
                    .and_then(|e| e.notice.as_ref())
                    .is_some_and(|n| n.firing);
                let send = if s.notice.firing {
                    !notified_firing && !s.suppressed
                } else {
                    notified_firing && s.resolve_allowed
                };
                if !send {
                    continue;
                }
                let mut notice = s.notice.clone();
                if !notice.firing
                    && let Some(prev) = ledger.alerts.get(&key).and_then(|e| e.notice.as_ref())
                {
                    notice.since_ms = prev.since_ms;
                }
                ledger.alerts.insert(
                    key.clone(),
                    LedgerEntry {
                        notice: Some(notice.clone()),
                        handled: BTreeMap::new(),
                    },
                );
                changed = true;
                for receiver in self.routed(&notice.severity) {
                    jobs.push((receiver, key.clone(), notice.clone()));
                }
            }
            if changed {
                self.save(&ledger);
            }
        }
        for (receiver, key, notice) in jobs {
            self.enqueue(&receiver, key, notice);
        }
    }

    fn enqueue(&self, receiver: &str, key: String, notice: AlertNotice) {
        let Some(tx) = self.inner.queues.get(receiver) else {
            return;
        };
        let marker = (receiver.to_owned(), key.clone(), notice.time_ms);
        if !lock(&self.inner.pending).insert(marker.clone()) {
            return;
        }
        if tx.try_send(Job { key, notice }).is_err() {
            // Full (or shutting down): the ledger still holds it; the redrive will try again.
            lock(&self.inner.pending).remove(&marker);
            (self.inner.observer)(receiver, "queue_full");
        }
    }

    fn redrive(&self) {
        let mut jobs = Vec::new();
        {
            let ledger = lock(&self.inner.ledger);
            for (key, entry) in &ledger.alerts {
                let Some(notice) = &entry.notice else {
                    continue;
                };
                for receiver in self.routed(&notice.severity) {
                    if entry.handled.get(&receiver) != Some(&notice.time_ms) {
                        jobs.push((receiver, key.clone(), notice.clone()));
                    }
                }
            }
        }
        for (receiver, key, notice) in jobs {
            self.enqueue(&receiver, key, notice);
        }
    }

    fn save(&self, ledger: &Ledger) {
        let Some(path) = &self.inner.config.ledger_path else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            let bytes = serde_json::to_vec_pretty(ledger).map_err(std::io::Error::other)?;
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "cannot save the notification ledger; a restart may repeat or miss a notification");
        }
    }

    fn mark_handled(&self, receiver: &str, key: &str, time_ms: i64) {
        let mut ledger = lock(&self.inner.ledger);
        if let Some(entry) = ledger.alerts.get_mut(key) {
            entry.handled.insert(receiver.to_owned(), time_ms);
            self.save(&ledger);
        }
    }

    async fn worker(
        self,
        receiver: ReceiverConfig,
        mut rx: mpsc::Receiver<Job>,
        shutdown: CancellationToken,
    ) {
        loop {
            let job = tokio::select! {
                _ = shutdown.cancelled() => return,
                job = rx.recv() => match job { Some(j) => j, None => return },
            };
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = self.deliver(&receiver, &job.notice) => outcome,
            };
            lock(&self.inner.pending).remove(&(
                receiver.name.clone(),
                job.key.clone(),
                job.notice.time_ms,
            ));
            (self.inner.observer)(&receiver.name, outcome);
            self.mark_handled(&receiver.name, &job.key, job.notice.time_ms);
        }
    }

    /// Delivers one notification with retries; returns the final outcome.
    async fn deliver(&self, receiver: &ReceiverConfig, notice: &AlertNotice) -> &'static str {
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let (answer, retry_after) = self.attempt(receiver, notice).await;
            let state = if notice.firing { "firing" } else { "resolved" };
            match verdict(&receiver.kind, &answer) {
                Verdict::Delivered => {
                    tracing::info!(receiver = %receiver.name, slo = %notice.slo, alert = %notice.alert, state, attempt, "notification delivered");
                    return "delivered";
                }
                Verdict::Reject => {
                    tracing::error!(receiver = %receiver.name, slo = %notice.slo, alert = %notice.alert, state, answer = %answer, "notification rejected by the receiver; not retried");
                    return "rejected";
                }
                Verdict::Retry => {
                    let backoff = self.backoff(attempt);
                    // A 429's Retry-After is honoured as given; otherwise back off.
                    let wait = retry_after.unwrap_or(backoff);
                    if started.elapsed() + wait > self.inner.config.deadline {
                        tracing::error!(receiver = %receiver.name, slo = %notice.slo, alert = %notice.alert, state, attempt, answer = %answer, "notification not delivered before the deadline; giving up");
                        return "expired";
                    }
                    tracing::warn!(receiver = %receiver.name, slo = %notice.slo, alert = %notice.alert, state, attempt, answer = %answer, wait_ms = wait.as_millis() as u64, "notification failed; retrying");
                    (self.inner.observer)(&receiver.name, "retried");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Exponential backoff with full jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.inner.config.backoff_base.as_millis() as u64;
        let cap = self.inner.config.backoff_max.as_millis() as u64;
        let exp = base.saturating_mul(1u64 << attempt.min(20)).min(cap).max(1);
        Duration::from_millis(rand::random_range(exp / 2..=exp))
    }

    async fn attempt(
        &self,
        receiver: &ReceiverConfig,
        notice: &AlertNotice,
    ) -> (Answer, Option<Duration>) {
        send(
            &self.inner.client,
            receiver,
            notice,
            &self.inner.config.external_url,
        )
        .await
    }

    /// Sends a clearly marked test notification to every receiver (or the one named), one attempt
    /// each; for PagerDuty a trigger and then its resolve.
    pub async fn send_test(&self, only: Option<&str>) -> Vec<(String, Vec<Answer>)> {
        let now = chrono::Utc::now().timestamp_millis();
        let notice = AlertNotice {
            slo: "slowburn_notify_test".into(),
            flow: "test".into(),
            alert: "notify_test".into(),
            severity: "SEV3".into(),
            firing: true,
            time_ms: now,
            since_ms: now,
            objective_percent: 99.9,
            burn_long: Some(1.0),
            burn_short: Some(1.0),
            factor: 14.4,
            long_window: "1h".into(),
            short_window: "5m".into(),
            budget_remaining: Some(1.0),
            time_to_exhaustion_secs: None,
            runbook_url: None,
            flow_health_url: None,
            test: true,
        };
        let mut out = Vec::new();
        for r in &self.inner.config.receivers {
            if only.is_some_and(|o| o != r.name) {
                continue;
            }
            let mut answers = vec![self.attempt(r, &notice).await.0];
            if matches!(r.kind, ReceiverKind::PagerDuty { .. }) {
                let resolved = AlertNotice {
                    firing: false,
                    ..notice.clone()
                };
                answers.push(self.attempt(r, &resolved).await.0);
            }
            out.push((r.name.clone(), answers));
        }
        out
    }
}

/// One HTTP attempt. Returns the answer and the receiver's `Retry-After`, if any.
pub async fn send(
    client: &reqwest::Client,
    receiver: &ReceiverConfig,
    notice: &AlertNotice,
    external_url: &str,
) -> (Answer, Option<Duration>) {
    let request = match &receiver.kind {
        ReceiverKind::PagerDuty { routing_key, url } => client
            .post(url)
            .json(&payload::pagerduty(notice, routing_key)),
        ReceiverKind::Slack { webhook_url } => {
            client.post(webhook_url).json(&payload::slack(notice))
        }
        ReceiverKind::Webhook { url, bearer_token } => {
            let r =
                client
                    .post(url)
                    .json(&payload::alertmanager(notice, &receiver.name, external_url));
            match bearer_token {
                Some(t) => r.bearer_auth(t),
                None => r,
            }
        }
    };
    match request.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(3600)));
            let mut body = resp.text().await.unwrap_or_default();
            body.truncate(1000);
            (
                Answer {
                    status: Some(status),
                    body,
                    error: None,
                },
                retry_after,
            )
        }
        Err(e) => {
            let error = if e.is_timeout() {
                format!("timed out: {e}")
            } else {
                format!("request failed: {e}")
            };
            (
                Answer {
                    status: None,
                    body: String::new(),
                    error: Some(error),
                },
                None,
            )
        }
    }
}
