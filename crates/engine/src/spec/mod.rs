//! The OCI runtime config of a container: the image's config and Docker's create body laid over
//! Docker's defaults (capabilities, mounts, masked and read-only paths, namespaces), as dockerd
//! builds it for runc. The container's own mounts come from [`crate::mounts::oci`].

use std::path::{Path, PathBuf};

use crate::container::spec::HostSpec;
use oci_spec::runtime::{
    Capabilities, Linux, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, Mount,
    PosixRlimitBuilder, PosixRlimitType, Process, Root, Spec, User,
};
use serde_json::Value;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::sharing::{Ns, Shm};
use crate::users;

mod devices;
mod resources;

use devices::{default_device_rules, device_rule, host_devices};
pub(crate) use resources::resources;

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
    /// The namespaces it shares and its `/dev/shm` ([`crate::sharing`]).
    pub sharing: &'a crate::sharing::Sharing,
    /// The init to bind at [`INIT_PATH`] and run as PID 1 (`--init`), from
    /// [`crate::Engine::init_binary`].
    pub init: Option<&'a Path>,
    /// What containers without a `seccomp=` security option get (berthd's
    /// `--seccomp-profile`).
    pub seccomp: &'a crate::seccomp::DaemonProfile,
    /// The remapping of the container's user namespace (`--userns-remap`, unless
    /// `--userns=host`).
    pub userns: Option<&'a crate::userns::Remap>,
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

/// The gids of `--group-add` (names resolved in the container's `/etc/group`), which the
/// container's process and its execs get.
pub(crate) fn group_add_gids(hc: &HostSpec, rootfs: &Path) -> Result<Vec<u32>> {
    hc.group_add
        .iter()
        .flatten()
        .map(|g| users::resolve_group(rootfs, g))
        .collect()
}

/// Whether `--security-opt no-new-privileges` (`:true`, `=true`) is set.
pub(crate) fn no_new_privileges(hc: &HostSpec) -> bool {
    hc.security_opt.iter().flatten().any(|s| {
        matches!(
            s.as_str(),
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"
        )
    })
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
pub fn capabilities(hc: &HostSpec) -> Vec<String> {
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
    let group_add = group_add_gids(hc, paths.rootfs)?;
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
    let no_new_privs = no_new_privileges(hc);
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

    let sharing = paths.sharing;
    let mut mounts = default_mounts(&sharing.shm, privileged);
    if paths.userns.is_some() && matches!(sharing.ipc, Ns::Join(_)) {
        // Another container's IPC namespace belongs to that container's user namespace, in
        // which this one's (a new one) may not mount its mqueue filesystem.
        mounts.retain(|m| m.destination() != Path::new("/dev/mqueue"));
    }
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
    // Read-only with a read-only root, as dockerd binds them (`NetworkMounts`).
    let etc_readonly = hc.readonly_rootfs.unwrap_or(false);
    for (file, dest) in [
        (paths.resolv_conf, "/etc/resolv.conf"),
        (paths.hostname, "/etc/hostname"),
        (paths.hosts, "/etc/hosts"),
    ] {
        if !own_mounts
            .iter()
            .any(|m| m.destination() == Path::new(dest))
        {
            own_mounts.push(bind(file, dest, etc_readonly));
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
        (LinuxNamespaceType::Pid, &sharing.pid),
        (LinuxNamespaceType::Ipc, &sharing.ipc),
        (LinuxNamespaceType::Uts, &sharing.uts),
        (LinuxNamespaceType::Mount, &Ns::New),
    ]
    .into_iter()
    .filter_map(|(typ, ns)| match ns {
        Ns::New => Some(namespace(typ, None)),
        Ns::Join(path) => Some(namespace(typ, Some(path))),
        Ns::Host => None,
    })
    .collect();
    if let Some(netns) = paths.netns {
        namespaces.push(namespace(LinuxNamespaceType::Network, Some(netns)));
    }
    let (uid_mappings, gid_mappings) = match paths.userns {
        Some(remap) => {
            namespaces.push(namespace(LinuxNamespaceType::User, None));
            let (uid, gid) = remap
                .mappings()
                .map_err(|e| EngineError::internal("the user namespace", e))?;
            (Some(uid), Some(gid))
        }
        None => (None, None),
    };
    let mut resources = resources(hc);
    let mut devices = Vec::new();
    if privileged {
        // Every device node of the host, and the device cgroup open to all, as dockerd does.
        devices = host_devices(Path::new("/dev"));
        resources.set_devices(Some(vec![device_rule(true, None, None, None)]));
    } else {
        resources.set_devices(Some(default_device_rules()));
    }
    let seccomp = crate::seccomp::profile(&security, privileged, &caps, paths.seccomp)?;
    let mut linux = Linux::default();
    linux
        .set_net_devices(None)
        .set_uid_mappings(uid_mappings)
        .set_gid_mappings(gid_mappings)
        .set_sysctl(Some(hc.sysctls.clone().unwrap_or_default()))
        .set_resources(Some(resources))
        .set_cgroups_path(Some(PathBuf::from(&paths.cgroups_path)))
        .set_namespaces(Some(namespaces))
        .set_devices((!devices.is_empty()).then_some(devices))
        .set_seccomp(seccomp)
        .set_rootfs_propagation(own.rootfs_propagation.map(str::to_string))
        .set_masked_paths((!privileged).then(|| {
            hc.masked_paths
                .clone()
                .unwrap_or_else(|| strings(MASKED_PATHS))
        }))
        .set_readonly_paths((!privileged).then(|| {
            hc.readonly_paths
                .clone()
                .unwrap_or_else(|| strings(READONLY_PATHS))
        }))
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);

    let (path, args) = (c.path.clone(), c.args.clone());
    let mut argv = Vec::new();
    // A command that is the init itself (`/dev/init --pause`, a pod's sandbox) runs as is.
    if paths.init.is_some() && path != INIT_PATH {
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
        .set_oom_score_adj(
            hc.oom_score_adj
                .filter(|v| *v != 0)
                .and_then(|v| i32::try_from(v).ok()),
        )
        .set_command_line(None)
        .set_io_priority(None);
    let mut root = Root::default();
    root.set_path(paths.rootfs.to_path_buf())
        .set_readonly(Some(hc.readonly_rootfs.unwrap_or(false)));
    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string())
        .set_process(Some(process))
        .set_root(Some(root))
        // No hostname without a UTS namespace of its own: the host's or another's stays.
        .set_hostname((sharing.uts == Ns::New).then_some(hostname))
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

fn default_mounts(shm: &Shm, privileged: bool) -> Vec<Mount> {
    let sys_opt = if privileged { "rw" } else { "ro" };
    let m = |dest: &str, typ: &str, source: &str, options: &[&str]| {
        mount(dest, typ, Path::new(source), strings(options))
    };
    let mut mounts = vec![
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
    ];
    match shm {
        Shm::Tmpfs(size) => mounts.push(m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &format!("size={size}"),
            ],
        )),
        Shm::Bind(source) => mounts.push(bind(source, "/dev/shm", false)),
        Shm::None => {}
    }
    mounts
}

fn bind(source: &Path, dest: &str, readonly: bool) -> Mount {
    let mut options = strings(&["rbind", "rprivate"]);
    if readonly {
        options.push("ro".to_string());
    }
    mount(dest, "bind", source, options)
}

#[cfg(test)]
mod tests;
