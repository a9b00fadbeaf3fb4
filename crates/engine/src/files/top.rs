//! `GET /containers/{id}/top?ps_args=`: as dockerd, `ps` runs on the host and the rows whose PID
//! belongs to the container's cgroup are kept.

use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::Engine;

/// Docker's `ContainerTopResponse`.
#[derive(Debug, Clone, Serialize)]
pub struct Top {
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    #[serde(rename = "Processes")]
    pub processes: Vec<Vec<String>>,
}

impl Engine {
    /// Runs `ps` (with `ps_args`, default `-ef`) and keeps the container's processes.
    pub fn top(&self, key: &str, ps_args: Option<&str>) -> Result<Top> {
        let c = self.containers.get(key)?;
        if !c.is_running() {
            return Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let pids = self
            .driver(&c)?
            .pids(&c.id)
            .map_err(|e| EngineError::internal("the container's processes", e))?;
        let args: Vec<&str> = match ps_args.map(str::trim).filter(|a| !a.is_empty()) {
            Some(a) => a.split_whitespace().collect(),
            None => vec!["-ef"],
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| EngineError::internal("running ps", e))?;
        if !out.status.success() {
            return Err(EngineError::Internal(format!(
                "Error running ps: {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

/// Keeps the rows of `ps` output whose PID column is in `pids`; the last column takes the rest
/// of the line (the command with its arguments), as dockerd splits it.
fn parse_ps(output: &str, pids: &[i32]) -> Result<Top> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let pid_index = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::Internal("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pid) = fields.get(pid_index).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len();
        let mut row: Vec<String> = fields
            .iter()
            .take(n.saturating_sub(1))
            .map(|s| s.to_string())
            .collect();
        if fields.len() >= n {
            row.push(fields[n - 1..].join(" "));
        }
        processes.push(row);
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_of_the_container_are_kept() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\nroot           1       0  0 08:00 ?        00:00:01 /sbin/init\nroot        3281    3255  0 08:48 ?        00:00:00 sleep 100\n";
        let top = parse_ps(out, &[3281]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(
            top.processes,
            vec![vec![
                "root",
                "3281",
                "3255",
                "0",
                "08:48",
                "?",
                "00:00:00",
                "sleep 100"
            ]]
        );
        assert!(parse_ps("USER X\n", &[]).is_err());
    }
}
