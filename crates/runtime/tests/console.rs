//! `process.terminal` with `--console-socket`: the pseudo-terminal's master reaches the caller over
//! SCM_RIGHTS and is the program's terminal (its output, its stdin, its size), for `create` and for
//! `exec --tty`; and the two flags are refused one without the other.

use std::time::Duration;

use berth_tests::{
    read_until, run_in_background, write_fd, Bundle, ConsoleSocket, Output, TIMEOUT,
};

const RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

/// How long a test waits for the console socket or for the terminal's output.
const WAIT: Duration = Duration::from_secs(10);

fn create_with_console(b: &Bundle, socket: &ConsoleSocket) -> Output {
    let bundle = b.path().display().to_string();
    let sock = socket.path().display().to_string();
    b.cmd(&[
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        &sock,
        &b.id,
    ])
}

/// The lines of terminal output, without the `\r` of the line discipline.
fn lines(out: &str) -> Vec<&str> {
    out.lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .collect()
}

/// A bundle running `sleep 30`, created and started.
fn running_sleeper() -> Bundle {
    let b = Bundle::new(RUNTIME, &["sleep", "30"]);
    b.create().ok();
    b.cmd(&["start", &b.id]).ok();
    b
}

#[test]
fn terminal_master_is_the_programs_terminal() {
    let mut b = Bundle::new(RUNTIME, &["sh"]);
    b.config["process"]["terminal"] = true.into();
    b.config["process"]["consoleSize"] = serde_json::json!({"height": 37, "width": 101});
    b.save();
    let socket = ConsoleSocket::new();
    create_with_console(&b, &socket).ok();
    let (master, _name) = socket.receive_master(WAIT);
    assert!(
        nix::unistd::isatty(&master).expect("isatty"),
        "the descriptor received is not a terminal"
    );
    b.cmd(&["start", &b.id]).ok();
    write_fd(&master, b"stty size; echo $((6*7)); tty; exit 3\n");
    // sh exits after the line: the master then reads EIO (every slave descriptor is closed).
    let out = read_until(&master, WAIT, |_| false);
    let lines = lines(&out);
    assert!(
        lines.contains(&"37 101"),
        "consoleSize not applied: {out:?}"
    );
    assert!(
        lines.contains(&"42"),
        "the program's stdin/stdout are not the terminal: {out:?}"
    );
    assert!(lines.contains(&"/dev/pts/0"), "{out:?}");
    b.wait_status("stopped");
}

#[test]
fn terminal_without_console_socket_is_refused() {
    let mut b = Bundle::new(RUNTIME, &["sh"]);
    b.config["process"]["terminal"] = true.into();
    b.save();
    let out = b.create();
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("console socket"), "{out:?}");
    assert!(!b.state_root().join(&b.id).exists());
}

#[test]
fn console_socket_without_terminal_is_refused() {
    let b = Bundle::new(RUNTIME, &["sh"]);
    let socket = ConsoleSocket::new();
    let out = create_with_console(&b, &socket);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("console socket"), "{out:?}");
    assert!(!b.state_root().join(&b.id).exists());
}

#[test]
fn exec_tty_without_console_socket_is_refused() {
    let b = running_sleeper();
    let out = b.cmd(&["exec", "--tty", &b.id, "true"]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("console-socket"), "{out:?}");
    let socket = ConsoleSocket::new();
    let sock = socket.path().display().to_string();
    let out = b.cmd(&["exec", "--console-socket", &sock, &b.id, "true"]);
    assert_ne!(out.code(), 0, "{out:?}");
    assert!(out.stderr.contains("console-socket"), "{out:?}");
    assert_eq!(b.state()["status"], "running");
}

#[test]
fn exec_tty_gives_a_working_terminal_and_its_exit_code() {
    let b = running_sleeper();
    let socket = ConsoleSocket::new();
    let sock = socket.path().display().to_string();
    let exec = run_in_background(
        b.command(&["exec", "--tty", "--console-socket", &sock, &b.id, "sh"]),
        TIMEOUT,
    );
    let (master, _name) = socket.receive_master(WAIT);
    assert!(nix::unistd::isatty(&master).expect("isatty"));
    write_fd(
        &master,
        b"echo $((6*7)); tty; test -t 0 && echo stdin-is-tty; exit 5\n",
    );
    let out = read_until(&master, WAIT, |_| false);
    let exec = exec.join().expect("exec thread");
    let lines = lines(&out);
    assert!(lines.contains(&"42"), "{out:?}");
    assert!(lines.contains(&"stdin-is-tty"), "{out:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("/dev/pts/")),
        "tty printed no /dev/pts name: {out:?}"
    );
    assert_eq!(exec.code(), 5, "{exec:?}");
    // The container's own program is untouched.
    assert_eq!(b.state()["status"], "running");
}

#[test]
fn exec_process_file_with_terminal_gets_its_console_size() {
    let b = running_sleeper();
    let process = serde_json::json!({
        "terminal": true,
        "consoleSize": {"height": 12, "width": 34},
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "stty size"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/"
    });
    let file = b.path().join("process.json");
    std::fs::write(&file, process.to_string()).expect("process.json");
    let socket = ConsoleSocket::new();
    let sock = socket.path().display().to_string();
    let file = file.display().to_string();
    let exec = run_in_background(
        b.command(&["exec", "--console-socket", &sock, "--process", &file, &b.id]),
        TIMEOUT,
    );
    let (master, _name) = socket.receive_master(WAIT);
    let out = read_until(&master, WAIT, |_| false);
    let exec = exec.join().expect("exec thread");
    assert_eq!(exec.code(), 0, "{exec:?}");
    assert!(lines(&out).contains(&"12 34"), "{out:?}");
}

#[test]
fn exec_detached_tty() {
    let b = running_sleeper();
    let socket = ConsoleSocket::new();
    let sock = socket.path().display().to_string();
    let exec = run_in_background(
        b.command(&[
            "exec",
            "-d",
            "--tty",
            "--console-socket",
            &sock,
            &b.id,
            "sh",
        ]),
        TIMEOUT,
    );
    let (master, _name) = socket.receive_master(WAIT);
    // Detached: the runtime returns while the shell still runs.
    let exec = exec.join().expect("exec thread");
    assert_eq!(exec.code(), 0, "{exec:?}");
    write_fd(&master, b"echo $((6*7)); exit\n");
    let out = read_until(&master, WAIT, |_| false);
    assert!(lines(&out).contains(&"42"), "{out:?}");
}
