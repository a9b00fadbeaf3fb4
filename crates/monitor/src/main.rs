//! `berth-monitor`: see the library's documentation.

fn main() {
    let cfg = match berth_monitor::Config::parse(std::env::args().skip(1)) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("berth-monitor: {e}\n{}", berth_monitor::config::USAGE);
            std::process::exit(2);
        }
    };
    std::process::exit(berth_monitor::run(cfg));
}
