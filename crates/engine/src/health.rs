//! Health checks, as dockerd has them: the container's `Healthcheck` merged with its image's at
//! create (field by field) and checked there, handed to the monitor at each start (which runs
//! the probes, see `berth_monitor::health`), and its news followed here: the last state kept for
//! inspect, `ps` and its `health` filter, and a `health_status` event at each change of status.

use std::time::Duration;

use berth_api::models::{Health, HealthStatusEnum, HealthcheckResult};
use berth_monitor::protocol::{self, HealthCheck, HealthStatus, Op};
use serde_json::Value;

use crate::container::spec::{ContainerSpec, HealthConfig};
use crate::error::{EngineError, Result};
use crate::monitor;
use crate::Engine;

/// dockerd's defaults.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const START_INTERVAL: Duration = Duration::from_secs(5);
const RETRIES: u32 = 3;
/// The shortest interval, timeout, start period or start interval dockerd accepts.
const MIN: i64 = 1_000_000;

/// The container's check with its image's filling what it leaves out (dockerd's `Merge`): the
/// test if it has none, each duration left at 0, the retries.
pub(crate) fn merge_image(config: &mut ContainerSpec, image_config: &Value) {
    let Ok(image) = serde_json::from_value::<HealthConfig>(image_config["Healthcheck"].clone())
    else {
        return;
    };
    let Some(own) = &mut config.healthcheck else {
        config.healthcheck = Some(image);
        return;
    };
    if own.test.as_ref().is_none_or(Vec::is_empty) {
        own.test = image.test;
    }
    for (mine, theirs) in [
        (&mut own.interval, image.interval),
        (&mut own.timeout, image.timeout),
        (&mut own.start_period, image.start_period),
        (&mut own.start_interval, image.start_interval),
        (&mut own.retries, image.retries),
    ] {
        if mine.unwrap_or(0) == 0 {
            *mine = theirs;
        }
    }
}

/// dockerd's checks at create.
pub(crate) fn validate(config: &ContainerSpec) -> Result<()> {
    let Some(h) = &config.healthcheck else {
        return Ok(());
    };
    for (value, name) in [
        (h.interval, "Interval"),
        (h.timeout, "Timeout"),
        (h.start_period, "StartPeriod"),
        (h.start_interval, "StartInterval"),
    ] {
        if value.is_some_and(|v| v != 0 && v < MIN) {
            return Err(EngineError::InvalidParameter(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries.is_some_and(|r| r < 0) {
        return Err(EngineError::InvalidParameter(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    Ok(())
}

/// The probe's command line: `CMD args...` as is, `CMD-SHELL text` through the container's
/// shell; none for `NONE` or no test.
fn command(test: &[String], shell: Option<&[String]>) -> Option<Vec<String>> {
    let (kind, rest) = test.split_first()?;
    match kind.as_str() {
        "CMD" if !rest.is_empty() => Some(rest.to_vec()),
        "CMD-SHELL" if !rest.is_empty() => {
            let mut argv = match shell.filter(|s| !s.is_empty()) {
                Some(s) => s.to_vec(),
                None => vec!["/bin/sh".to_string(), "-c".to_string()],
            };
            argv.push(rest.join(" "));
            Some(argv)
        }
        _ => None,
    }
}

fn millis(nanos: Option<i64>, default: Duration) -> u64 {
    match nanos.filter(|n| *n > 0) {
        Some(n) => (n / 1_000_000) as u64,
        None => default.as_millis() as u64,
    }
}

/// What the monitor runs for `config`'s check, with `process` (the container's, from its OCI
/// config) as the template of each probe; `None` without a check.
pub(crate) fn monitor_check(
    config: &ContainerSpec,
    process: Option<&oci_spec::runtime::Process>,
) -> Result<Option<HealthCheck>> {
    let Some(h) = &config.healthcheck else {
        return Ok(None);
    };
    let Some(argv) = command(h.test.as_deref().unwrap_or(&[]), config.shell.as_deref()) else {
        return Ok(None);
    };
    let mut process = process
        .cloned()
        .ok_or_else(|| EngineError::Internal("the container's config has no process".into()))?;
    process.set_args(Some(argv));
    process.set_terminal(Some(false));
    process.set_console_size(None);
    Ok(Some(HealthCheck {
        process: Box::new(process),
        interval_ms: millis(h.interval, INTERVAL),
        timeout_ms: millis(h.timeout, TIMEOUT),
        start_period_ms: millis(h.start_period, Duration::ZERO),
        start_interval_ms: millis(h.start_interval, START_INTERVAL),
        retries: h.retries.filter(|r| *r > 0).map_or(RETRIES, |r| r as u32),
    }))
}

/// The monitor's state as the API shows it.
pub(crate) fn api_health(h: &protocol::Health) -> Health {
    Health {
        status: Some(match h.status {
            HealthStatus::Starting => HealthStatusEnum::STARTING,
            HealthStatus::Healthy => HealthStatusEnum::HEALTHY,
            HealthStatus::Unhealthy => HealthStatusEnum::UNHEALTHY,
        }),
        failing_streak: Some(i64::from(h.failing_streak)),
        log: Some(
            h.log
                .iter()
                .map(|r| HealthcheckResult {
                    start: Some(r.start.clone()),
                    end: Some(r.end.clone()),
                    exit_code: Some(i64::from(r.exit_code)),
                    output: Some(r.output.clone()),
                })
                .collect(),
        ),
    }
}

impl Engine {
    /// The last health state of a container with a check (kept after it stopped).
    pub(crate) fn health_of(&self, id: &str) -> Option<protocol::Health> {
        self.health_lock().get(id).cloned()
    }

    fn health_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, protocol::Health>> {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops what is known of a container's health (at removal).
    pub(crate) fn forget_health(&self, id: &str) {
        self.health_lock().remove(id);
    }

    /// Follows the health of a started container with a check: each change from its monitor is
    /// kept, and a change of status is published as `health_status: STATUS`. Ends with the
    /// monitor.
    pub(crate) fn watch_health(&self, id: String) {
        // `starting` from the start on: compose inspects right after it and wants a status.
        self.health_lock().insert(
            id.clone(),
            protocol::Health {
                version: 0,
                status: HealthStatus::Starting,
                failing_streak: 0,
                log: Vec::new(),
            },
        );
        let engine = self.clone();
        tokio::spawn(async move {
            let sock = monitor::socket(&engine.run_dir(&id));
            let mut seen = 0;
            loop {
                let Ok(h) = monitor::call::<protocol::Health>(&sock, Op::Health { seen }).await
                else {
                    return;
                };
                seen = h.version;
                let before = engine
                    .health_lock()
                    .insert(id.clone(), h.clone())
                    .map_or(HealthStatus::Starting, |old| old.status);
                // dockerd's events: at each change, none for the `starting` of a start.
                if before != h.status {
                    if let Ok(c) = engine.containers.get(&id) {
                        let action = format!("health_status: {}", h.status.as_str());
                        engine.publish(&action, &c, &[]);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_as_dockerd_runs_them() {
        assert_eq!(
            command(&strings(&["CMD", "true", "x"]), None),
            Some(strings(&["true", "x"]))
        );
        assert_eq!(
            command(&strings(&["CMD-SHELL", "test -e /x"]), None),
            Some(strings(&["/bin/sh", "-c", "test -e /x"]))
        );
        let shell = strings(&["/bin/ash", "-ec"]);
        assert_eq!(
            command(&strings(&["CMD-SHELL", "exit 1"]), Some(&shell)),
            Some(strings(&["/bin/ash", "-ec", "exit 1"]))
        );
        assert_eq!(command(&strings(&["NONE"]), None), None);
        assert_eq!(command(&[], None), None);
        assert_eq!(command(&strings(&["CMD"]), None), None);
    }

    #[test]
    fn the_image_fills_what_the_container_leaves_out() {
        let image = json!({"Healthcheck": {"Test": ["CMD", "img"], "Interval": 5, "Retries": 7}});
        let mut c = ContainerSpec::default();
        merge_image(&mut c, &image);
        assert_eq!(c.healthcheck.as_ref().and_then(|h| h.retries), Some(7));
        let mut c = ContainerSpec {
            healthcheck: Some(HealthConfig {
                interval: Some(9),
                ..Default::default()
            }),
            ..Default::default()
        };
        merge_image(&mut c, &image);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, Some(strings(&["CMD", "img"])));
        assert_eq!((h.interval, h.retries), (Some(9), Some(7)));
        let mut none = ContainerSpec {
            healthcheck: Some(HealthConfig {
                test: Some(strings(&["NONE"])),
                ..Default::default()
            }),
            ..Default::default()
        };
        merge_image(&mut none, &image);
        assert_eq!(
            none.healthcheck.unwrap().test,
            Some(strings(&["NONE"])),
            "--no-healthcheck wins"
        );
    }

    #[test]
    fn create_refuses_what_dockerd_refuses() {
        let with = |h: HealthConfig| ContainerSpec {
            healthcheck: Some(h),
            ..Default::default()
        };
        let err = validate(&with(HealthConfig {
            interval: Some(10),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Interval in Healthcheck cannot be less than 1ms"
        );
        assert!(validate(&with(HealthConfig {
            retries: Some(-1),
            ..Default::default()
        }))
        .is_err());
        assert!(validate(&with(HealthConfig {
            interval: Some(0),
            timeout: Some(MIN),
            ..Default::default()
        }))
        .is_ok());
    }
}
