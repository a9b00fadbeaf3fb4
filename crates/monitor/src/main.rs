//! `berth-monitor`: see the library's documentation.

fn main() {
    // The monitor starts containers and execs with the runtime library in-process: what their
    // `/proc/PID/exe` reaches before they exec (or a `#!/proc/self/exe` script makes them run)
    // is this binary, which must be a read-only view of it (CVE-2019-5736), as the runtime's.
    if let Err(e) = berth_runtime::readonly_exe::ensure() {
        eprintln!("berth-monitor: {e}");
        std::process::exit(1);
    }
    let cfg = match berth_monitor::Config::parse(std::env::args().skip(1)) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("berth-monitor: {e}\n{}", berth_monitor::config::USAGE);
            std::process::exit(2);
        }
    };
    if let Some(text) = cfg
        .cgroup_mounts
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        // The daemon's view (this process is in a copy of its mount namespace): one read of
        // the whole mount table less per container.
        berth_cgroups::preset_cgroup_mounts(&text);
    }
    std::process::exit(berth_monitor::run(cfg));
}
