//! The OCI runtime config of a container: the image's config and Docker's create body laid over
//! Docker's defaults (capabilities, mounts, masked and read-only paths, namespaces), as dockerd
//! builds it for runc. The container's own mounts come from [`crate::mounts::oci`].

use std::path::{Path, PathBuf};

use berth_api::models::HostConfig;
use oci_spec::runtime::{
    Capabilities, Linux, LinuxBlockIo, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup,
    LinuxDeviceType, LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources,
    LinuxSeccomp, Mount, PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};
use serde_json::Value;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::users;

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, in the kernel's numbering (`CAP_CHOWN` is 0), for
/// `--privileged` and `--cap-add ALL` (see [`all_caps`]).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the container's files outside its image live.
#[derive(Debug, Clone)]
pub struct Paths<'a> {
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` to bind in.
    pub hostname: &'a Path,
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
    /// The network namespace to join (None: the host's, for `--network host`).
    pub netns: Option<&'a Path>,
    /// Where named volumes live (`<dir>/<name>/_data`).
    pub volumes: &'a Path,
    /// Where volume subpaths are bound before the runtime binds them in (`<run-dir>/mounts`).
    pub subpaths: &'a Path,
    /// The mount points of the plugin volumes, by name, their plugins gave at this start.
    pub plugin_volumes: &'a std::collections::HashMap<String, std::path::PathBuf>,
    pub cgroups_path: String,
    /// The init to bind at [`INIT_PATH`] and run as PID 1 (`--init`), from
    /// [`crate::Engine::init_binary`].
    pub init: Option<&'a Path>,
}

/// Where the init of `--init` appears in the container, as Docker's `docker-init`.
pub const INIT_PATH: &str = "/dev/init";

impl crate::Engine {
    /// The init binary `c` runs as its PID 1: `HostConfig.Init`, or the daemon's `init`
    /// default when the container leaves it unset; `None` without init.
    pub fn init_binary(&self, c: &Container) -> Option<&Path> {
        c.host_config
            .init
            .unwrap_or(self.config.init_default)
            .then_some(self.config.init.as_path())
    }
}

/// "Every capability" as a container can get it: those of [`ALL_CAPS`] in berthd's own
/// bounding set (as moby's `GetAllCapabilities`): a capability the daemon lacks (a machine or
/// a parent container that dropped it) cannot be raised in the container, and asking for it
/// would make the runtime's capset fail.
pub fn all_caps() -> Vec<String> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The capabilities after `--cap-add`/`--cap-drop` (names with or without `CAP_`, any case;
/// `ALL`).
pub fn capabilities(hc: &HostConfig) -> Vec<String> {
    if hc.privileged.unwrap_or(false) {
        return all_caps();
    }
    let norm = |c: &String| {
        let up = c.to_uppercase();
        if up == "ALL" || up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        }
    };
    let add: Vec<String> = hc.cap_add.iter().flatten().map(norm).collect();
    let drop: Vec<String> = hc.cap_drop.iter().flatten().map(norm).collect();
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all_caps()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    for c in add.into_iter().filter(|c| c != "ALL") {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    caps.retain(|c| !drop.contains(c));
    caps
}

/// The environment: the image's, then the container's (a later `KEY=` replaces an earlier
/// one), then `HOSTNAME`, a default `PATH` and `TERM` for a tty if missing.
pub fn environment(image_env: &[String], env: &[String], hostname: &str, tty: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let key = |s: &str| s.split('=').next().unwrap_or(s).to_string();
    for e in image_env.iter().chain(env) {
        let k = key(e);
        out.retain(|o| key(o) != k);
        out.push(e.clone());
    }
    if !out.iter().any(|e| key(e) == "PATH") {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    if !out.iter().any(|e| key(e) == "HOSTNAME") {
        out.insert(1.min(out.len()), format!("HOSTNAME={hostname}"));
    }
    if tty && !out.iter().any(|e| key(e) == "TERM") {
        out.push("TERM=xterm".to_string());
    }
    out
}

/// Builds the config.json of `c`, whose image config is `image_config` (the `config` object of
/// the image's config blob).
pub fn build(c: &Container, image_config: &Value, paths: &Paths<'_>) -> Result<Spec> {
    let hc = &c.host_config;
    let cfg = &c.config;
    let tty = c.tty();
    let hostname = cfg
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| c.id[..12].to_string());
    let image_env: Vec<String> = string_list(&image_config["Env"]);
    let mut env = environment(
        &image_env,
        cfg.env.as_deref().unwrap_or(&[]),
        &hostname,
        tty,
    );
    let user_spec = cfg
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            image_config["User"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
    let user = users::resolve(paths.rootfs, &user_spec)?;
    user.add_home(&mut env);
    let group_add: Vec<u32> = hc
        .group_add
        .iter()
        .flatten()
        .map(|g| users::resolve_group(paths.rootfs, g))
        .collect::<Result<_>>()?;
    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image_config["WorkingDir"].as_str().map(str::to_string))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let caps = capabilities(hc);
    let privileged = hc.privileged.unwrap_or(false);
    let security = hc.security_opt.clone().unwrap_or_default();
    let no_new_privs = security.iter().any(|s| {
        s == "no-new-privileges" || s == "no-new-privileges:true" || s == "no-new-privileges=true"
    });
    let rlimits =
        hc.ulimits
            .iter()
            .flatten()
            .map(|u| {
                let name = u.name.clone().unwrap_or_default();
                let typ: PosixRlimitType = format!("RLIMIT_{}", name.to_uppercase())
                    .parse()
                    .map_err(|_| {
                        EngineError::InvalidParameter(format!("invalid ulimit type: {name}"))
                    })?;
                PosixRlimitBuilder::default()
                    .typ(typ)
                    .hard(u.hard.unwrap_or(0).max(0) as u64)
                    .soft(u.soft.unwrap_or(0).max(0) as u64)
                    .build()
                    .map_err(|e| EngineError::internal("a ulimit", e))
            })
            .collect::<Result<Vec<_>>>()?;
    let mut additional_gids = user.additional_gids.clone();
    additional_gids.extend(group_add);

    let mut mounts = default_mounts(hc, privileged);
    if let Some(init) = paths.init {
        if !init.is_file() {
            return Err(EngineError::Internal(format!(
                "berth-init binary not found: {} (set the daemon's --init-path)",
                init.display()
            )));
        }
        mounts.push(bind(init, INIT_PATH, true));
    }
    // The container's own mounts and the /etc files (unless it mounts its own there), ordered
    // by depth as dockerd orders them (a mount never hides a deeper one); they replace the
    // defaults on their targets, and a mount on /dev everything below it.
    let own = crate::mounts::oci::user_mounts(
        c,
        &crate::mounts::oci::Context {
            volumes: paths.volumes,
            rootfs: paths.rootfs,
            subpaths: paths.subpaths,
            plugin_volumes: paths.plugin_volumes,
        },
    )?;
    let mut own_mounts = own.mounts;
    for (file, dest) in [
        (paths.resolv_conf, "/etc/resolv.conf"),
        (paths.hostname, "/etc/hostname"),
        (paths.hosts, "/etc/hosts"),
    ] {
        if !own_mounts
            .iter()
            .any(|m| m.destination() == Path::new(dest))
        {
            own_mounts.push(bind(file, dest, false));
        }
    }
    let depth = |m: &Mount| m.destination().components().count();
    own_mounts.sort_by_key(depth);
    let own_dev = own_mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev"));
    mounts.retain(|m| {
        let dest = m.destination();
        let replaced = own_mounts.iter().any(|u| u.destination() == dest);
        !(replaced || own_dev && dest.starts_with("/dev/"))
    });
    mounts.extend(own_mounts);

    let mut namespaces: Vec<LinuxNamespace> = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ]
    .into_iter()
    .map(|typ| namespace(typ, None))
    .collect();
    if let Some(netns) = paths.netns {
        namespaces.push(namespace(LinuxNamespaceType::Network, Some(netns)));
    }
    let mut resources = resources(hc);
    let mut devices = Vec::new();
    if privileged {
        // Every device node of the host, and the device cgroup open to all, as dockerd does.
        devices = host_devices(Path::new("/dev"));
        resources.set_devices(Some(vec![device_rule(true, None, None, None)]));
    } else {
        resources.set_devices(Some(default_device_rules()));
    }
    let seccomp = crate::seccomp::profile(&security, privileged, &caps)?
        .map(serde_json::from_value::<LinuxSeccomp>)
        .transpose()
        .map_err(|e| EngineError::internal("the seccomp profile", e))?;
    let mut linux = Linux::default();
    linux
        .set_net_devices(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(Some(hc.sysctls.clone().unwrap_or_default()))
        .set_resources(Some(resources))
        .set_cgroups_path(Some(PathBuf::from(&paths.cgroups_path)))
        .set_namespaces(Some(namespaces))
        .set_devices((!devices.is_empty()).then_some(devices))
        .set_seccomp(seccomp)
        .set_rootfs_propagation(own.rootfs_propagation.map(str::to_string))
        .set_masked_paths((!privileged).then(|| strings(MASKED_PATHS)))
        .set_readonly_paths((!privileged).then(|| strings(READONLY_PATHS)))
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);

    let (path, args) = (c.path.clone(), c.args.clone());
    let mut argv = Vec::new();
    if paths.init.is_some() {
        argv.extend([INIT_PATH.to_string(), "--".to_string()]);
    }
    argv.push(path);
    argv.extend(args);
    let cap_set: Capabilities = caps
        .iter()
        .filter_map(|c| c.strip_prefix("CAP_")?.parse().ok())
        .collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(cap_set.clone()))
        .set_effective(Some(cap_set.clone()))
        .set_permitted(Some(cap_set))
        .set_inheritable(None)
        .set_ambient(None);
    let mut process_user = User::default();
    process_user
        .set_uid(user.uid)
        .set_gid(user.gid)
        .set_additional_gids(Some(additional_gids));
    let console_size = match hc.console_size.as_deref() {
        Some(&[h, w]) if tty && h > 0 && w > 0 => Some(
            oci_spec::runtime::BoxBuilder::default()
                .height(h as u64)
                .width(w as u64)
                .build()
                .map_err(|e| EngineError::internal("the console size", e))?,
        ),
        _ => None,
    };
    let mut process = Process::default();
    process
        .set_terminal(Some(tty))
        .set_console_size(console_size)
        .set_user(process_user)
        .set_args(Some(argv))
        .set_env(Some(env))
        .set_cwd(PathBuf::from(cwd))
        .set_capabilities(Some(capabilities))
        .set_rlimits((!rlimits.is_empty()).then_some(rlimits))
        .set_no_new_privileges(Some(no_new_privs))
        .set_apparmor_profile(None)
        .set_selinux_label(None)
        .set_scheduler(None)
        .set_oom_score_adj(None)
        .set_command_line(None)
        .set_io_priority(None);
    let mut root = Root::default();
    root.set_path(paths.rootfs.to_path_buf())
        .set_readonly(Some(hc.readonly_rootfs.unwrap_or(false)));
    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string())
        .set_process(Some(process))
        .set_root(Some(root))
        .set_hostname(Some(hostname))
        .set_domainname(None)
        .set_mounts(Some(mounts))
        .set_annotations(None)
        .set_linux(Some(linux))
        .set_hooks(None);
    Ok(spec)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ).set_path(path.map(Path::to_path_buf));
    ns
}

/// A JSON array of strings as a list (empty when it is not one).
pub(crate) fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One OCI mount.
pub(crate) fn mount(destination: &str, typ: &str, source: &Path, options: Vec<String>) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.to_path_buf()))
        .set_options(Some(options))
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    m
}

fn default_mounts(hc: &HostConfig, privileged: bool) -> Vec<Mount> {
    let shm = hc.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20);
    let sys_opt = if privileged { "rw" } else { "ro" };
    let m = |dest: &str, typ: &str, source: &str, options: &[&str]| {
        mount(dest, typ, Path::new(source), strings(options))
    };
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        m(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_opt],
        ),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_opt],
        ),
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &format!("size={shm}"),
            ],
        ),
    ]
}

/// One device cgroup rule (`c`haracter devices when a major is given, all devices otherwise).
fn device_rule(
    allow: bool,
    major: Option<i64>,
    minor: Option<i64>,
    typ: Option<LinuxDeviceType>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow)
        .set_typ(typ)
        .set_major(major)
        .set_minor(minor)
        .set_access(Some("rwm".to_string()));
    rule
}

/// Docker's device cgroup for unprivileged containers (moby's default spec): deny all, then
/// allow zero, null, urandom, random, tty and console, and deny `c 10:229` (fuse) explicitly;
/// the runtime appends full, ptmx, the ptys and `linux.devices`, as runc does.
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let char_dev = |allow: bool, major: i64, minor: i64| {
        device_rule(allow, Some(major), Some(minor), Some(LinuxDeviceType::C))
    };
    vec![
        device_rule(false, None, None, None),
        char_dev(true, 1, 5),
        char_dev(true, 1, 3),
        char_dev(true, 1, 9),
        char_dev(true, 1, 8),
        char_dev(true, 5, 0),
        char_dev(true, 5, 1),
        char_dev(false, 10, 229),
    ]
}

/// The device nodes under `dir` (the host's `/dev`) as `linux.devices` entries, as containerd's
/// `HostDevices` lists them for `--privileged`: recursively, skipping the directories of other
/// mounts (`pts`, `shm`, `fd`, `mqueue`) and of LXC/udev bookkeeping, `console` (the container
/// gets its own), symlinks, fifos and anything that vanishes meanwhile.
fn host_devices(dir: &Path) -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                out.extend(host_devices(&path));
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let kind = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        let rdev = meta.rdev();
        let mut device = LinuxDevice::default();
        device
            .set_path(path)
            .set_typ(kind)
            .set_major(nix::sys::stat::major(rdev) as i64)
            .set_minor(nix::sys::stat::minor(rdev) as i64)
            .set_file_mode(Some(meta.mode() & 0o777))
            .set_uid(Some(meta.uid()))
            .set_gid(Some(meta.gid()));
        out.push(device);
    }
    out
}

fn bind(source: &Path, dest: &str, readonly: bool) -> Mount {
    let mut options = strings(&["rbind", "rprivate"]);
    if readonly {
        options.push("ro".to_string());
    }
    mount(dest, "bind", source, options)
}

/// `linux.resources` from the HostConfig's limits.
pub(crate) fn resources(hc: &HostConfig) -> LinuxResources {
    let mut memory = LinuxMemory::default();
    let mut memory_set = false;
    let limit = hc.memory.unwrap_or(0);
    if limit > 0 {
        let swap = match hc.memory_swap.unwrap_or(0) {
            0 => limit.saturating_mul(2),
            s => s,
        };
        memory.set_limit(Some(limit)).set_swap(Some(swap));
        memory_set = true;
    }
    if let Some(res) = hc.memory_reservation.filter(|m| *m > 0) {
        memory.set_reservation(Some(res));
        memory_set = true;
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        memory.set_swappiness(Some(s as u64));
        memory_set = true;
    }
    if hc.oom_kill_disable == Some(true) {
        memory.set_disable_oom_killer(Some(true));
        memory_set = true;
    }
    let mut cpu = LinuxCpu::default();
    let mut cpu_set = false;
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        // n * 100000 / 1e9, without overflowing for the largest n.
        cpu.set_period(Some(100_000)).set_quota(Some(n / 10_000));
        cpu_set = true;
    }
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.set_shares(Some(s as u64));
        cpu_set = true;
    }
    if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        cpu.set_quota(Some(q));
        cpu_set = true;
    }
    if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
        cpu.set_period(Some(p as u64));
        cpu_set = true;
    }
    if let Some(c) = hc.cpuset_cpus.clone().filter(|c| !c.is_empty()) {
        cpu.set_cpus(Some(c));
        cpu_set = true;
    }
    if let Some(m) = hc.cpuset_mems.clone().filter(|m| !m.is_empty()) {
        cpu.set_mems(Some(m));
        cpu_set = true;
    }
    let pids = hc.pids_limit.filter(|p| *p > 0).map(|p| {
        let mut pids = LinuxPids::default();
        pids.set_limit(p);
        pids
    });
    let block_io = hc.blkio_weight.filter(|w| *w > 0).map(|w| {
        let mut io = LinuxBlockIo::default();
        io.set_weight(Some(w));
        io
    });
    let mut r = LinuxResources::default();
    r.set_devices(None)
        .set_memory(memory_set.then_some(memory))
        .set_cpu(cpu_set.then_some(cpu))
        .set_pids(pids)
        .set_block_io(block_io)
        .set_hugepage_limits(None)
        .set_network(None)
        .set_rdma(None)
        .set_unified(None);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capabilities_add_and_drop_as_docker() {
        let mut hc = HostConfig::default();
        assert_eq!(capabilities(&hc).len(), DEFAULT_CAPS.len());
        hc.cap_add = Some(vec!["net_admin".into()]);
        hc.cap_drop = Some(vec!["CAP_CHOWN".into(), "kill".into()]);
        let caps = capabilities(&hc);
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        hc.cap_drop = Some(vec!["ALL".into()]);
        assert_eq!(capabilities(&hc), vec!["CAP_NET_ADMIN".to_string()]);
    }

    #[test]
    fn the_largest_limits_do_not_overflow() {
        let hc = HostConfig {
            memory: Some(i64::MAX),
            nano_cpus: Some(i64::MAX),
            ..HostConfig::default()
        };
        let r = serde_json::to_value(resources(&hc)).unwrap();
        assert_eq!(r["memory"]["swap"], json!(i64::MAX));
        assert_eq!(r["cpu"]["quota"], json!(i64::MAX / 10_000));
        let hc = HostConfig {
            nano_cpus: Some(1_500_000_000),
            ..HostConfig::default()
        };
        let r = serde_json::to_value(resources(&hc)).unwrap();
        assert_eq!(r["cpu"]["quota"], json!(150_000));
    }

    #[test]
    fn environment_layers_and_defaults() {
        let env = environment(
            &["PATH=/bin".into(), "A=image".into()],
            &["A=ctr".into(), "B=2".into()],
            "h",
            true,
        );
        assert_eq!(
            env,
            vec!["PATH=/bin", "HOSTNAME=h", "A=ctr", "B=2", "TERM=xterm"]
        );
        let env = environment(&[], &[], "h", false);
        assert_eq!(env, vec![DEFAULT_PATH.to_string(), "HOSTNAME=h".into()]);
    }

    fn container(hc: HostConfig) -> Container {
        Container {
            id: "0123456789ab".repeat(5) + "0123",
            name: "c".into(),
            created: String::new(),
            image_id: String::new(),
            image_manifest: String::new(),
            image_top: None,
            path: "sleep".into(),
            args: vec!["100".into()],
            config: Default::default(),
            host_config: hc,
            state: Default::default(),
            restart_count: 0,
            restart_delay_ms: 0,
            manually_stopped: false,
            log_path: Default::default(),
            networks: Default::default(),
            anonymous_volumes: Vec::new(),
        }
    }

    fn spec(hc: HostConfig, init: Option<&Path>) -> Value {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "").unwrap();
        let paths = Paths {
            rootfs: dir.path(),
            hostname: &f,
            hosts: &f,
            resolv_conf: &f,
            netns: None,
            volumes: dir.path(),
            subpaths: dir.path(),
            plugin_volumes: &Default::default(),
            cgroups_path: "/berth/x".into(),
            init,
        };
        serde_json::to_value(build(&container(hc), &json!({}), &paths).unwrap()).unwrap()
    }

    #[test]
    fn init_is_bound_read_only_and_runs_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("berth-init");
        std::fs::write(&init, "").unwrap();
        let s = spec(HostConfig::default(), Some(&init));
        assert_eq!(
            s["process"]["args"],
            json!(["/dev/init", "--", "sleep", "100"])
        );
        let m = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/init")
            .unwrap();
        assert_eq!(m["source"], json!(init));
        assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
        let s = spec(HostConfig::default(), None);
        assert_eq!(s["process"]["args"], json!(["sleep", "100"]));
        // A missing binary is an error that says which.
        let missing = dir.path().join("nope");
        let c = container(HostConfig::default());
        let paths = Paths {
            rootfs: dir.path(),
            hostname: &init,
            hosts: &init,
            resolv_conf: &init,
            netns: None,
            volumes: dir.path(),
            subpaths: dir.path(),
            plugin_volumes: &Default::default(),
            cgroups_path: String::new(),
            init: Some(&missing),
        };
        let err = build(&c, &json!({}), &paths).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn privileged_gets_the_host_devices_and_an_open_device_cgroup() {
        let s = spec(HostConfig::default(), None);
        assert_eq!(
            s["linux"]["resources"]["devices"][0],
            json!({"allow": false, "access": "rwm"})
        );
        assert!(s["linux"]["devices"].is_null());
        assert!(s["linux"]["maskedPaths"].is_array());
        let hc = HostConfig {
            privileged: Some(true),
            ..Default::default()
        };
        let s = spec(hc, None);
        assert_eq!(
            s["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let devices = s["linux"]["devices"].as_array().unwrap();
        let null = devices.iter().find(|d| d["path"] == "/dev/null").unwrap();
        assert_eq!(
            (&null["type"], &null["major"], &null["minor"]),
            (&json!("c"), &json!(1), &json!(3))
        );
        assert!(devices.iter().all(|d| {
            let p = d["path"].as_str().unwrap();
            p != "/dev/console" && !p.starts_with("/dev/pts/") && !p.starts_with("/dev/shm/")
        }));
        assert!(s["linux"]["maskedPaths"].is_null());
        assert!(s["linux"]["readonlyPaths"].is_null());
    }

    #[test]
    fn all_caps_are_those_of_the_bounding_set() {
        let all = all_caps();
        assert!(all.contains(&"CAP_CHOWN".to_string()));
        assert!(all.len() <= ALL_CAPS.len());
        let hc = HostConfig {
            privileged: Some(true),
            ..Default::default()
        };
        assert_eq!(capabilities(&hc), all);
    }

    #[test]
    fn memory_swap_defaults_to_twice_the_limit() {
        let hc = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        let r = serde_json::to_value(resources(&hc)).unwrap();
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["pids"]["limit"], 10);
    }
}
