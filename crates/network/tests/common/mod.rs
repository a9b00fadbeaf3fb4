//! Fixtures for the real-kernel tests: an [`Env`] per test with its own state directory, its
//! own nftables table and its own names (`bt<pid%1000><tag><n>`), network namespaces pinned
//! under its temporary directory, and tiny TCP/UDP servers run inside them. `Env`'s `Drop`
//! removes namespaces, veths, bridges and the table on its own thread and runtime, so cleanup
//! also happens when an assertion fails. Every wait is bounded.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use berth_network::netlink::Netlink;
use berth_network::{AttachRequest, Config, Endpoint, Network, NetworkSpec, Networks, PortBinding};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// How long a connection or a reply may take.
pub const WAIT: Duration = Duration::from_secs(2);
/// How long a server thread lives at most.
const SERVER_LIFE: Duration = Duration::from_secs(30);

/// Whether the test can run; prints `skipped` when it cannot.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("skipped {test}: needs root (namespaces, bridges, nftables)");
    false
}

/// One test's world.
pub struct Env {
    pub nets: Networks,
    pub dir: tempfile::TempDir,
    /// The prefix of every name this test makes; also its nftables table.
    pub prefix: String,
    netns: Mutex<Vec<PathBuf>>,
    veths: Mutex<Vec<String>>,
}

impl Env {
    /// A fresh world for the test tagged `tag` (a letter unique within the test binary).
    pub async fn new(tag: &str) -> Env {
        let prefix = format!("bt{}{tag}", std::process::id() % 1000);
        let dir = tempfile::tempdir().unwrap();
        let nets = Networks::open(Self::config(dir.path(), &prefix))
            .await
            .unwrap();
        Env {
            nets,
            dir,
            prefix,
            netns: Mutex::new(Vec::new()),
            veths: Mutex::new(Vec::new()),
        }
    }

    pub fn config(dir: &Path, prefix: &str) -> Config {
        Config {
            state_dir: dir.join("state"),
            table: prefix.to_string(),
        }
    }

    /// Reopens the networks from the same state (as a daemon restart does).
    pub async fn reopen(&mut self) {
        self.nets = Networks::open(Self::config(self.dir.path(), &self.prefix))
            .await
            .unwrap();
    }

    /// Bridge name number `n` of this test.
    pub fn bridge(&self, n: u32) -> String {
        format!("{}{n}", self.prefix)
    }

    /// Creates network `name` on bridge number `n` with `subnet`.
    pub async fn network(&self, name: &str, n: u32, subnet: &str, internal: bool) -> Network {
        let spec = NetworkSpec {
            name: name.to_string(),
            subnet: Some(subnet.parse().unwrap()),
            internal,
            options: [(berth_network::OPT_BRIDGE_NAME.to_string(), self.bridge(n))].into(),
            ..NetworkSpec::default()
        };
        self.nets.create(spec).await.unwrap()
    }

    /// A new network namespace (with `lo` down), pinned under the temporary directory.
    pub fn netns(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(format!("netns-{name}"));
        File::create(&path).unwrap();
        let target = path.clone();
        std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWNET).unwrap();
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap();
        })
        .join()
        .unwrap();
        self.netns.lock().unwrap().push(path.clone());
        path
    }

    /// Attaches `container` (its namespace at `netns`) to `network` as `eth0` with the default
    /// route, and remembers its veth for cleanup.
    pub async fn attach(
        &self,
        network: &str,
        container: &str,
        netns: &Path,
        ports: Vec<PortBinding>,
    ) -> Result<Endpoint, berth_network::NetworkError> {
        self.attach_req(AttachRequest {
            network: network.to_string(),
            container_id: container.to_string(),
            netns: netns.to_path_buf(),
            interface: "eth0".to_string(),
            ip: None,
            ip6: None,
            mac: None,
            link_local: Vec::new(),
            ports,
            default_route: true,
        })
        .await
    }

    /// Attaches as asked, and remembers the veth for cleanup.
    pub async fn attach_req(
        &self,
        req: AttachRequest,
    ) -> Result<Endpoint, berth_network::NetworkError> {
        let endpoint = self.nets.attach(&req).await?;
        self.veths.lock().unwrap().push(endpoint.host_veth.clone());
        Ok(endpoint)
    }

    /// Remembers a link to delete on drop.
    pub fn track_link(&self, name: &str) {
        self.veths.lock().unwrap().push(name.to_string());
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let netns = std::mem::take(&mut *self.netns.lock().unwrap());
        for path in &netns {
            let _ = umount2(path, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(path);
        }
        let veths = std::mem::take(&mut *self.veths.lock().unwrap());
        let prefix = self.prefix.clone();
        // Drop may run inside the test's runtime (which is blocked here): clean up on a thread
        // with a runtime of its own.
        let cleaned = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let netlink = Netlink::host().unwrap();
                let mut links = veths;
                links.extend(netlink.links_with_prefix(&prefix).await.unwrap_or_default());
                for link in links {
                    let _ = netlink.delete_link(&link).await;
                }
                let firewall = berth_network::firewall::Firewall::new(&prefix).unwrap();
                let _ = firewall.delete_table().await;
            });
        })
        .join();
        if cleaned.is_err() {
            eprintln!("cleanup of {} failed", self.prefix);
        }
    }
}

/// Runs `f` on a thread inside the namespace at `netns`.
pub fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(netns).unwrap();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A server thread that stops when dropped (or after [`SERVER_LIFE`]).
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A TCP server in `netns` on `0.0.0.0:port` that answers every connection with `reply`, or
/// with the peer's address when `reply` is empty.
pub fn tcp_server(netns: &Path, port: u16, reply: &'static str) -> Server {
    let file = File::open(netns).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + SERVER_LIFE;
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let _ = stream.set_nonblocking(false);
                    let text = match reply {
                        "" => peer.ip().to_string(),
                        text => text.to_string(),
                    };
                    let _ = stream.write_all(text.as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    ready_rx.recv_timeout(WAIT).unwrap();
    Server {
        stop,
        thread: Some(thread),
    }
}

/// A UDP server in `netns` on `0.0.0.0:port` that answers every datagram with `reply`.
pub fn udp_server(netns: &Path, port: u16, reply: &'static str) -> Server {
    let file = File::open(netns).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + SERVER_LIFE;
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((_, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(reply.as_bytes(), from);
            }
        }
    });
    ready_rx.recv_timeout(WAIT).unwrap();
    Server {
        stop,
        thread: Some(thread),
    }
}

/// Connects to `ip:port` (from `netns`, or from the host) and reads the server's reply.
pub fn tcp_get(netns: Option<&Path>, ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let get = move || {
        let addr = SocketAddr::V4(SocketAddrV4::new(ip, port));
        let mut stream = TcpStream::connect_timeout(&addr, WAIT)?;
        stream.set_read_timeout(Some(WAIT))?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    };
    match netns {
        Some(netns) => in_netns(netns, get),
        None => get(),
    }
}

/// Sends a datagram to `ip:port` from the host and returns the reply (a few tries).
pub fn udp_get(ip: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(Duration::from_millis(300)))?;
    let mut last = std::io::Error::other("no reply");
    for _ in 0..5 {
        socket.send_to(b"ping", (ip, port))?;
        let mut buf = [0u8; 512];
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => return Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `nft list ruleset`.
pub fn ruleset() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
