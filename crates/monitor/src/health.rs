//! The container's health check, run by its monitor as dockerd runs it: a probe (an exec of the
//! check's command) every interval after the last one ended, killed after its timeout; the last
//! 5 results kept; `healthy` after a success, `unhealthy` after `retries` failures in a row,
//! failures within the start period not counted while `starting`. The daemon asks with
//! [`Op::Health`](crate::protocol::Op::Health) and is answered at each change.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use crate::monitor::{Monitor, Role, CONTAINER};
use crate::protocol::{self, Health, HealthCheck, HealthResult, HealthStatus};

/// Results kept (dockerd's `maxLogEntries`).
const KEPT: usize = 5;
/// Output kept of a probe (dockerd's `maxOutputLen`).
pub(crate) const MAX_OUTPUT: usize = 4096;

/// A probe that runs.
#[derive(Debug)]
struct Probe {
    task: u64,
    pid: i32,
    started: Instant,
    start: SystemTime,
    output: Vec<u8>,
    timed_out: bool,
}

/// The health check's state.
#[derive(Debug)]
pub(crate) struct Prober {
    check: HealthCheck,
    status: HealthStatus,
    failing_streak: u32,
    log: VecDeque<HealthResult>,
    version: u64,
    /// When the next probe starts (set once the container started).
    next: Option<Instant>,
    probe: Option<Probe>,
    count: u64,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Milliseconds as Go prints a duration (`200ms`, `1.5s`, `1m30s`, `1h0m0s`): dockerd's words.
fn go_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms % 60_000);
    let seconds = match s % 1000 {
        0 => format!("{}s", s / 1000),
        frac => {
            format!(
                "{}.{}",
                s / 1000,
                format!("{frac:03}").trim_end_matches('0')
            ) + "s"
        }
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Prober {
    pub(crate) fn new(check: HealthCheck) -> Prober {
        Prober {
            check,
            status: HealthStatus::Starting,
            failing_streak: 0,
            log: VecDeque::new(),
            version: 1,
            next: None,
            probe: None,
            count: 0,
        }
    }

    pub(crate) fn health(&self) -> Health {
        Health {
            version: self.version,
            status: self.status,
            failing_streak: self.failing_streak,
            log: self.log.iter().cloned().collect(),
        }
    }

    /// Whether task `k` is the running probe.
    pub(crate) fn is_probe(&self, k: u64) -> bool {
        self.probe.as_ref().is_some_and(|p| p.task == k)
    }

    /// Keeps output of the running probe, up to [`MAX_OUTPUT`].
    pub(crate) fn output(&mut self, data: &[u8]) {
        if let Some(p) = &mut self.probe {
            let room = MAX_OUTPUT.saturating_sub(p.output.len());
            p.output.extend_from_slice(&data[..data.len().min(room)]);
        }
    }

    /// The wait before the next probe: the start interval while starting within the start
    /// period, else the interval.
    fn interval(&self, started: Option<SystemTime>) -> Duration {
        let in_start_period = started
            .and_then(|s| s.elapsed().ok())
            .is_some_and(|e| e < ms(self.check.start_period_ms));
        if self.status == HealthStatus::Starting && in_start_period {
            ms(self.check.start_interval_ms)
        } else {
            ms(self.check.interval_ms)
        }
    }

    /// When the loop must wake up for the health check.
    pub(crate) fn due_in(&self) -> Option<Duration> {
        match &self.probe {
            Some(p) if !p.timed_out => {
                Some(ms(self.check.timeout_ms).saturating_sub(p.started.elapsed()))
            }
            Some(_) => None,
            None => self
                .next
                .map(|n| n.saturating_duration_since(Instant::now())),
        }
    }

    /// Records a result and moves the status as dockerd does.
    fn record(&mut self, result: HealthResult, start: SystemTime, started: Option<SystemTime>) {
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else {
            let in_start_period = started
                .and_then(|s| start.duration_since(s).ok())
                .is_some_and(|d| d < ms(self.check.start_period_ms));
            if !(self.status == HealthStatus::Starting && in_start_period) {
                self.failing_streak += 1;
                if self.failing_streak >= self.check.retries {
                    self.status = HealthStatus::Unhealthy;
                }
            }
        }
        self.log.push_back(result);
        while self.log.len() > KEPT {
            self.log.pop_front();
        }
        self.version += 1;
        self.next = Some(Instant::now() + self.interval(started));
    }
}

impl Monitor {
    /// Starts a probe when one is due, kills one past its timeout.
    pub(crate) fn health_tick(&mut self) {
        let running = self.exit.is_none()
            && self
                .tasks
                .get(&CONTAINER)
                .is_some_and(|t| t.ended.is_none());
        let started = self.started_at;
        let Some(prober) = &mut self.prober else {
            return;
        };
        if started.is_none() || !running {
            return;
        }
        if let Some(p) = &mut prober.probe {
            if !p.timed_out && p.started.elapsed() >= ms(prober.check.timeout_ms) {
                p.timed_out = true;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            return;
        }
        let interval = prober.interval(started);
        let next = *prober.next.get_or_insert_with(|| Instant::now() + interval);
        if Instant::now() < next {
            return;
        }
        prober.count += 1;
        let id = format!("health-{}", prober.count);
        let process = (*prober.check.process).clone();
        let start = SystemTime::now();
        match self.exec(&id, process, false, false) {
            Ok((task, pid)) => {
                if let Some(prober) = &mut self.prober {
                    prober.probe = Some(Probe {
                        task,
                        pid,
                        started: Instant::now(),
                        start,
                        output: Vec::new(),
                        timed_out: false,
                    });
                }
            }
            Err(e) => {
                let result = HealthResult {
                    start: rfc3339(start),
                    end: rfc3339(SystemTime::now()),
                    exit_code: -1,
                    output: e,
                };
                if let Some(prober) = &mut self.prober {
                    prober.record(result, start, started);
                }
                self.answer_health_waiters();
            }
        }
    }

    /// The probe (task `k`) ended and its output is drained: its result, and the task goes.
    pub(crate) fn finish_probe(&mut self, k: u64) {
        let task = self.tasks.remove(&k);
        let started = self.started_at;
        let Some(prober) = &mut self.prober else {
            return;
        };
        let Some(probe) = prober.probe.take() else {
            return;
        };
        let code = task.and_then(|t| t.ended).map_or(-1, |e| e.code);
        let (exit_code, output) = if probe.timed_out {
            let timeout = go_duration(prober.check.timeout_ms);
            (-1, format!("Health check exceeded timeout ({timeout})"))
        } else {
            (code, String::from_utf8_lossy(&probe.output).into_owned())
        };
        let result = HealthResult {
            start: rfc3339(probe.start),
            end: rfc3339(SystemTime::now()),
            exit_code,
            output,
        };
        prober.record(result, probe.start, started);
        self.answer_health_waiters();
    }

    /// Answers the `health` requests whose version is behind (all of them once the container
    /// ended).
    pub(crate) fn answer_health_waiters(&mut self) {
        let Some(health) = self.prober.as_ref().map(Prober::health) else {
            return;
        };
        let ended = self.exit.is_some();
        let line = protocol::to_line(&health);
        for c in self.clients.values_mut() {
            if let Role::Health { seen } = c.role {
                if seen < health.version || ended {
                    c.out.extend_from_slice(&line);
                    c.role = Role::Done;
                    c.close_when_flushed = true;
                }
            }
        }
    }

    /// `health`: at once if there is news, else once there is.
    pub(crate) fn health_request(&mut self, k: u64, seen: u64) -> Option<protocol::Reply> {
        let Some(prober) = &self.prober else {
            return Some(protocol::Reply::error("the container has no health check"));
        };
        if prober.version > seen {
            let health = prober.health();
            if let Some(c) = self.clients.get_mut(&k) {
                c.out.extend_from_slice(&protocol::to_line(&health));
                c.role = Role::Done;
                c.close_when_flushed = true;
            }
            return None;
        }
        if self.exit.is_some() {
            return Some(protocol::Reply::error("the container has exited"));
        }
        if let Some(c) = self.clients.get_mut(&k) {
            c.role = Role::Health { seen };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(retries: u32, start_period_ms: u64) -> HealthCheck {
        HealthCheck {
            process: Box::default(),
            interval_ms: 1000,
            timeout_ms: 1000,
            start_period_ms,
            start_interval_ms: 100,
            retries,
        }
    }

    fn result(code: i32) -> HealthResult {
        HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: format!("{code}"),
        }
    }

    #[test]
    fn statuses_follow_dockerds_rules() {
        let now = SystemTime::now();
        let mut p = Prober::new(check(2, 0));
        p.record(result(1), now, Some(now));
        assert_eq!((p.status, p.failing_streak), (HealthStatus::Starting, 1));
        p.record(result(1), now, Some(now));
        assert_eq!((p.status, p.failing_streak), (HealthStatus::Unhealthy, 2));
        p.record(result(0), now, Some(now));
        assert_eq!((p.status, p.failing_streak), (HealthStatus::Healthy, 0));
        for _ in 0..10 {
            p.record(result(2), now, Some(now));
        }
        assert_eq!(p.log.len(), KEPT);
        assert_eq!(p.health().version, 14);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_while_starting() {
        let now = SystemTime::now();
        let mut p = Prober::new(check(1, 60_000));
        p.record(result(1), now, Some(now));
        assert_eq!((p.status, p.failing_streak), (HealthStatus::Starting, 0));
        assert_eq!(p.interval(Some(now)), ms(100), "the start interval");
        p.record(result(0), now, Some(now));
        p.record(result(1), now, Some(now));
        assert_eq!(p.status, HealthStatus::Unhealthy, "counted once healthy");
        assert_eq!(p.interval(Some(now)), ms(1000));
    }

    #[test]
    fn timeouts_read_as_go_prints_them() {
        for (ms, text) in [
            (200, "200ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (90_000, "1m30s"),
            (3_600_000, "1h0m0s"),
            (3_661_050, "1h1m1.05s"),
        ] {
            assert_eq!(go_duration(ms), text);
        }
    }

    #[test]
    fn probe_output_is_bounded() {
        let mut p = Prober::new(check(1, 0));
        p.probe = Some(Probe {
            task: 3,
            pid: 1,
            started: Instant::now(),
            start: SystemTime::now(),
            output: Vec::new(),
            timed_out: false,
        });
        assert!(p.is_probe(3) && !p.is_probe(0));
        p.output(&[b'x'; 3000]);
        p.output(&[b'y'; 3000]);
        assert_eq!(p.probe.as_ref().map(|p| p.output.len()), Some(MAX_OUTPUT));
    }
}
