//! Lambda's resource limits for a function's processes: a CPU share and a memory size, as a
//! cgroup (v2, or v1's `cpu` and `memory` controllers) that the process joins before its first
//! instruction. A 128 MB function gets 7.2 % of a core (1769 MB buy one vCPU) and is killed past
//! its memory; a hook that only reports when it has a whole machine cannot be trusted on Lambda.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::ProcessConfig;

/// The scheduler period a CPU quota is a share of: Linux's default.
const PERIOD_US: u64 = 100_000;
/// Prefix of the cgroups made here, so stale ones from killed runs can be found and removed.
const PREFIX: &str = "greenlight-limits-";

/// One limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// A share of one core, in percent.
    CpuPercent(f64),
    /// A memory size, in MiB; the process is killed when it needs more.
    MemoryMib(u64),
}

/// Which cgroup interface the machine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    V2,
    V1,
}

/// A cgroup with limits, removed again when dropped.
#[derive(Debug)]
pub struct Cgroup {
    /// One directory on v2; one per controller on v1.
    dirs: Vec<PathBuf>,
    hierarchy: Hierarchy,
    description: String,
}

impl Cgroup {
    /// `Ok(None)` when no limit is asked for; `Err` says why a limit cannot be set here.
    pub fn create(limits: &[Limit]) -> Result<Option<Self>, String> {
        if limits.is_empty() {
            return Ok(None);
        }
        let root = Path::new("/sys/fs/cgroup");
        let name = format!("{PREFIX}{}-{}", std::process::id(), unique());
        let v2_controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let hierarchy = if v2_controllers.split_whitespace().any(|c| c == "cpu" || c == "memory") {
            Hierarchy::V2
        } else {
            Hierarchy::V1
        };
        let mut writes: Vec<(PathBuf, String)> = Vec::new();
        let mut descriptions = Vec::new();
        let mut dirs = Vec::new();
        for limit in limits {
            let (controller, files, description) = match *limit {
                Limit::CpuPercent(percent) => {
                    let quota_us = ((percent / 100.0) * PERIOD_US as f64).round().max(1000.0) as u64;
                    let files = match hierarchy {
                        Hierarchy::V2 => vec![("cpu.max", format!("{quota_us} {PERIOD_US}"))],
                        Hierarchy::V1 => vec![
                            ("cpu.cfs_period_us", PERIOD_US.to_string()),
                            ("cpu.cfs_quota_us", quota_us.to_string()),
                        ],
                    };
                    ("cpu", files, format!("{percent}% of one core ({quota_us} µs per {PERIOD_US} µs)"))
                }
                Limit::MemoryMib(mib) => {
                    let bytes = (mib * 1024 * 1024).to_string();
                    let files = match hierarchy {
                        Hierarchy::V2 => vec![("memory.max", bytes), ("memory.swap.max", "0".to_owned())],
                        Hierarchy::V1 => vec![("memory.limit_in_bytes", bytes)],
                    };
                    ("memory", files, format!("{mib} MiB of memory"))
                }
            };
            let dir = match hierarchy {
                Hierarchy::V2 => root.join(&name),
                Hierarchy::V1 => root.join(controller).join(&name),
            };
            let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
            let probe = match hierarchy {
                Hierarchy::V2 => v2_controllers.split_whitespace().any(|c| c == controller),
                Hierarchy::V1 => parent.join(files[0].0).exists(),
            };
            if !probe {
                return Err(format!("no cgroup {controller} controller is mounted at {}", root.display()));
            }
            remove_stale(&parent);
            if !dirs.contains(&dir) {
                dirs.push(dir.clone());
            }
            writes.extend(files.into_iter().map(|(file, value)| (dir.join(file), value)));
            descriptions.push(description);
        }
        let version = match hierarchy {
            Hierarchy::V2 => "cgroup v2",
            Hierarchy::V1 => "cgroup v1",
        };
        let cgroup = Self { dirs, hierarchy, description: format!("{} ({version})", descriptions.join(", ")) };
        for dir in &cgroup.dirs {
            std::fs::create_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        for (path, value) in writes {
            // memory.swap.max is absent where the kernel has no swap accounting: nothing to limit.
            if path.ends_with("memory.swap.max") && !path.exists() {
                continue;
            }
            std::fs::write(&path, &value).map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))?;
        }
        Ok(Some(cgroup))
    }

    /// What the limits are, for reports.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The same process, joining the cgroup before it starts.
    pub fn wrap(&self, process: ProcessConfig) -> ProcessConfig {
        let joins: Vec<String> = (0..self.dirs.len()).map(|i| format!("echo $$ > \"${}\"", i + 1)).collect();
        let script = format!("{} && shift {} && exec \"$@\"", joins.join(" && "), self.dirs.len());
        let mut command = vec!["/bin/sh".to_owned(), "-c".to_owned(), script, "limits".to_owned()];
        command.extend(self.dirs.iter().map(|dir| dir.join("cgroup.procs").display().to_string()));
        command.extend(process.command);
        ProcessConfig { command, environment: process.environment }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Removal fails while a process is still inside. Whoever ran them has killed them by now,
        // but a killed process needs CPU time to finish exiting: lift the CPU quota, then retry.
        for dir in &self.dirs {
            let (file, unlimited) = match self.hierarchy {
                Hierarchy::V2 => ("cpu.max", format!("max {PERIOD_US}")),
                Hierarchy::V1 => ("cpu.cfs_quota_us", "-1".to_owned()),
            };
            let _ = std::fs::write(dir.join(file), unlimited);
        }
        for dir in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// A number no other cgroup of this process has had.
fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Removes the empty cgroups of earlier runs whose process is gone (killed before it could clean up).
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            // Fails, harmlessly, if processes are still inside.
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}
