//! The bodies of Berth's fuzz targets: each function feeds arbitrary bytes to one of the readers
//! of untrusted input, the way berthd (or the monitor, or the DNS server) would. The cargo-fuzz
//! targets in `fuzz/` call them, one each; `tests/corpus.rs` calls them on every file of
//! `fuzz/corpus/<target>/` with the stable toolchain, inside `cargo test`.
//!
//! A target must never panic, whatever the bytes: a panic is a crash of berthd (`panic =
//! "abort"`). Where a reader has a property worth checking (a normalised reference parses back
//! to itself, a DNS reply fits its transport), the target asserts it, and a failed assertion is
//! a finding too.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::str::FromStr;

use berth_api::models::{
    ContainerCreateBody, ExecConfig, ExecStartConfig, HostConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, VolumeCreateRequest,
};
use berth_api::query::{bool_value, Filters};
use berth_daemon::body::{decode_json, limit};
use berth_daemon::route;
use berth_image::reference::Reference;

/// The body of a target: any bytes, no answer.
pub type Target = fn(&[u8]);

/// Every target: the name of its fuzz target and corpus directory, and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("route", route),
    ("filters", filters),
    ("body", body),
    ("reference", reference),
    ("layer", layer),
    ("archive", archive),
    ("dns", dns),
    ("stdcopy", stdcopy),
    ("monitor", monitor),
    ("logs", logs),
    ("dockerfile", dockerfile),
    ("context", context),
    ("websocket", websocket),
    ("local_log", local_log),
    ("spdy", spdy),
];

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"];

/// Names the globs and filters are tried against.
const NAMES: [&str; 5] = [
    "busybox:latest",
    "localhost:5000/team/app:v1",
    "team/bb@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "é/ü:ß",
    "",
];

/// The request line: the first byte picks the method, the rest is the request target. Parsed
/// as hyper hands it over (a target the `http` crate accepts), and as any text at all.
pub fn route(data: &[u8]) {
    let Some((&m, target)) = data.split_first() else {
        return;
    };
    let method = http::Method::from_bytes(METHODS[usize::from(m) % METHODS.len()].as_bytes())
        .unwrap_or_default();
    if let Ok(uri) = http::Uri::try_from(target) {
        request_line(&method, uri.path(), uri.query());
    }
    let text = String::from_utf8_lossy(target);
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    request_line(&method, path, query);
}

/// What berthd reads of a request line before the engine sees it.
fn request_line(method: &http::Method, path: &str, query: Option<&str>) {
    if let Ok((r, _version)) = route::parse(method, path) {
        let _ = limit(&r);
    }
    let q = route::query(query);
    let _ = route::query_all(query);
    for v in q.values() {
        let _ = bool_value(v);
    }
    if let Some(f) = q.get("filters") {
        filters_text(f);
    }
    if let Some(s) = q.get("signal") {
        let _ = berth_engine::lifecycle::parse_signal(s);
    }
    for key in ["fromImage", "repo", "name", "tag"] {
        if let Some(v) = q.get(key) {
            let _ = Reference::from_str(v);
        }
    }
}

/// A `filters` query parameter (already decoded), and the same text as a `reference` glob.
pub fn filters(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    filters_text(&text);
    for name in NAMES {
        let _ = berth_engine::images::path_match(&text, name);
        let _ = berth_engine::images::reference_matches(&text, name);
    }
}

fn filters_text(text: &str) {
    let Ok(f) = Filters::parse(text) else {
        return;
    };
    let labels: BTreeMap<&str, &str> = [("a", "b"), ("com.docker.compose.project", "p")].into();
    let _ = f.labels_match(|k| labels.get(k).copied());
    for key in [
        "reference",
        "before",
        "since",
        "label",
        "name",
        "id",
        "status",
    ] {
        let _ = f.has(key);
        for v in f.get(key) {
            let _ = Reference::from_str(v);
            for name in NAMES {
                let _ = berth_engine::images::reference_matches(v, name);
            }
        }
    }
}

/// A request body: the first byte picks the type, the rest is decoded as berthd decodes it.
/// A container create body that decodes goes on to the OCI config berthd would build from it.
pub fn body(data: &[u8]) {
    let Some((&kind, json)) = data.split_first() else {
        return;
    };
    match kind % 10 {
        0 => {
            if let Ok(b) = decode_json::<ContainerCreateBody>(json) {
                container_config(&b);
            }
        }
        1 => {
            if let Ok(e) = decode_json::<ExecConfig>(json) {
                if let Some(s) = &e.detach_keys {
                    let _ = s.split(',').count();
                }
            }
        }
        2 => {
            let _ = decode_json::<ExecStartConfig>(json);
        }
        3 => {
            let _ = decode_json::<NetworkCreateRequest>(json);
        }
        4 => {
            let _ = decode_json::<NetworkConnectRequest>(json);
        }
        5 => {
            let _ = decode_json::<NetworkDisconnectRequest>(json);
        }
        6 => {
            let _ = decode_json::<VolumeCreateRequest>(json);
        }
        7 => {
            // `/auth` reads fields of a JSON value.
            if let Ok(v) = decode_json::<serde_json::Value>(json) {
                let _ = v["username"].as_str();
            }
        }
        8 => {
            // The `X-Registry-Auth` header: base64 JSON.
            let _ = berth_engine::distribution::decode_auth(Some(&String::from_utf8_lossy(json)));
        }
        _ => {
            if let Ok(hc) = decode_json::<HostConfig>(json) {
                container_config(&ContainerCreateBody {
                    host_config: Some(hc),
                    ..ContainerCreateBody::default()
                });
            }
        }
    }
}

/// The OCI config of a container made from `body`, as `create` then `start` make it. What would
/// touch the host is left out: bind sources are made when missing and named volumes are
/// copied up (only their specs are parsed), seccomp profiles named by path are read.
fn container_config(body: &ContainerCreateBody) {
    let config = berth_engine::wire::spec::spec_of_body(body);
    let mut hc = berth_engine::wire::spec::host_of_body(body);
    let _ = berth_engine::mounts::check_specs(&hc);
    hc.binds = None;
    hc.mounts = None;
    if let Some(opts) = &mut hc.security_opt {
        opts.retain(|o| {
            let (key, value) = o.split_once(['=', ':']).unwrap_or((o, ""));
            key != "seccomp"
                || value == "unconfined"
                || value == "builtin"
                || value.trim_start().starts_with('{')
        });
    }
    if let Some(s) = &config.stop_signal {
        let _ = berth_engine::lifecycle::parse_signal(s);
    }
    for v in hc
        .log_config
        .iter()
        .flat_map(|l| l.config.iter().flatten())
        .map(|(_, v)| v)
    {
        let _ = berth_engine::lifecycle::parse_size(v);
    }
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let root = dir.path();
    let paths = berth_engine::spec::Paths {
        rootfs: root,
        hostname: &root.join("hostname"),
        hosts: &root.join("hosts"),
        resolv_conf: &root.join("resolv.conf"),
        netns: None,
        volumes: &root.join("volumes"),
        subpaths: &root.join("mounts"),
        cgroups_path: "berth/fuzz".to_string(),
        sharing: &Default::default(),
        init: None,
        plugin_volumes: &Default::default(),
        seccomp: &Default::default(),
        userns: None,
    };
    let argv: Vec<String> = config
        .entrypoint
        .iter()
        .flatten()
        .chain(config.cmd.iter().flatten())
        .cloned()
        .collect();
    let (path, args) = match argv.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => ("sh".to_string(), Vec::new()),
    };
    let container = berth_engine::container::Container {
        id: "0".repeat(64),
        name: "fuzz".to_string(),
        created: berth_engine::container::NEVER.to_string(),
        image_id: String::new(),
        image_manifest: String::new(),
        image_top: None,
        path,
        args,
        config,
        host_config: hc,
        state: berth_engine::container::State::default(),
        restart_count: 0,
        restart_delay_ms: 0,
        manually_stopped: false,
        log_path: root.join("log.json"),
        networks: berth_engine::network::ContainerNetworks::default(),
        anonymous_volumes: Vec::new(),
    };
    let _ = berth_engine::spec::build(&container, &serde_json::json!({}), &paths);
}

/// An image reference, as `pull`, `tag`, `push` and the image routes take it. A reference that
/// parses normalises to text that parses back to it, the long way and the short way.
pub fn reference(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(r) = Reference::from_str(&text) else {
        return;
    };
    for form in [r.to_string(), r.familiar()] {
        assert_eq!(
            Reference::from_str(&form).as_ref(),
            Ok(&r),
            "{text:?} normalised to {form:?}"
        );
    }
    let _ = r.familiar_name();
    let _ = r.with_tag(&text);
}

/// A layer (tar, gzip or zstd, detected) applied into an empty directory, with overlay
/// whiteouts or carried out (the first byte's low bit). Nothing may appear beside the
/// directory.
pub fn layer(data: &[u8]) {
    let Some((&mode, tar)) = data.split_first() else {
        return;
    };
    let Ok(outer) = tempfile::tempdir() else {
        return;
    };
    let dir = outer.path().join("layer");
    if std::fs::create_dir(&dir).is_err() {
        return;
    }
    let whiteouts = if mode & 1 == 0 {
        berth_image::layer::Whiteouts::Overlay
    } else {
        berth_image::layer::Whiteouts::Delete
    };
    let _ = berth_image::layer::apply_with(tar, &dir, whiteouts);
    let beside: Vec<_> = std::fs::read_dir(outer.path())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(beside, ["layer"], "the layer wrote outside its directory");
}

/// A `docker load` archive read into an image store (copy snapshots) of its own, which is made
/// afresh after anything loads (or every 500 inputs).
pub fn archive(data: &[u8]) {
    use std::sync::Mutex;
    struct Store {
        _dir: tempfile::TempDir,
        store: berth_image::import::ImageStore,
        uses: u32,
    }
    static STORE: Mutex<Option<Store>> = Mutex::new(None);
    let mut slot = STORE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.as_ref().is_none_or(|s| s.uses >= 500) {
        *slot = None;
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let Ok(store) = berth_image::import::ImageStore::open_with(
            dir.path(),
            berth_image::import::Backend::Copy,
        ) else {
            return;
        };
        *slot = Some(Store {
            _dir: dir,
            store,
            uses: 0,
        });
    }
    let Some(s) = slot.as_mut() else {
        return;
    };
    s.uses += 1;
    let platform = berth_image::manifest::Platform::host();
    if let Ok(names) = berth_image::archive::load(&s.store, data, &platform) {
        if !names.is_empty() {
            *slot = None;
        }
    }
}

/// The engine's side of the DNS server: known names (one with many addresses), reverse names.
struct Names;

impl berth_network::dns::Resolver for Names {
    fn lookup(&self, _container: &str, name: &str) -> Option<Vec<std::net::Ipv4Addr>> {
        match name {
            "web" | "web.net" => Some(vec![std::net::Ipv4Addr::new(10, 9, 0, 2)]),
            "many" => Some(
                (0..=255)
                    .map(|i| std::net::Ipv4Addr::new(10, 9, 1, i))
                    .collect(),
            ),
            _ => None,
        }
    }

    fn reverse(&self, _container: &str, ip: std::net::Ipv4Addr) -> Option<String> {
        match ip.octets() {
            [10, 9, 0, 2] => Some("web.net".to_string()),
            [10, 9, 0, 3] => Some(format!("{}.net", "a".repeat(70))),
            [10, 9, 0, 4] => Some(["b"; 200].join(".")),
            _ => None,
        }
    }

    fn upstreams(&self, _container: &str) -> Vec<std::net::SocketAddr> {
        Vec::new()
    }
}

/// A DNS message as the embedded server reads it (over UDP and TCP); its reply fits the
/// transport.
pub fn dns(data: &[u8]) {
    for max in [512, 65535] {
        if let Some(reply) = berth_network::dns::answer_offline(data, "c1", &Names, max) {
            assert!(reply.len() <= max, "a reply of {} bytes", reply.len());
            assert!(reply.len() >= 12, "a reply without a header");
        }
    }
}

/// Docker's stdcopy framing as a client reads it from attach, logs and exec.
pub fn stdcopy(data: &[u8]) {
    use berth_api::stdcopy::{frame, read_frame};
    let mut r = data;
    while let Ok(Some((stream, payload))) = read_frame(&mut r) {
        assert_eq!(frame(stream, &payload).len(), payload.len() + 8);
    }
}

/// The monitor protocol: each line as every message type, requests re-encoded and read back;
/// and the two line readers.
pub fn monitor(data: &[u8]) {
    use berth_monitor::protocol::{
        from_line, read_line, read_line_buffered, to_line, ExecState, ExitStatus, Reply, Request,
        State,
    };
    for line in data.split(|&b| b == b'\n') {
        if let Ok(request) = from_line::<Request>(line) {
            let encoded = to_line(&request);
            let back: Result<Request, _> = from_line(&encoded);
            assert!(
                back.as_ref().is_ok_and(|b| to_line(b) == encoded),
                "{:?} re-encoded as {:?} reads back as {back:?}",
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(&encoded)
            );
        }
        let _ = from_line::<Reply>(line).map(Reply::into_result);
        let _ = from_line::<ExitStatus>(line);
        let _ = from_line::<State>(line);
        let _ = from_line::<ExecState>(line);
    }
    let _ = read_line(&mut &data[..]);
    let _ = read_line_buffered(&mut BufReader::new(data));
}

/// A json-file log as `docker logs` reads it, through the same streaming reader: the first
/// byte picks the streams, `since`, `until`, `tail`, timestamps and whether the log is split
/// into a rotated file and the current one; the rest is the log.
pub fn logs(data: &[u8]) {
    use berth_engine::logs::stream;
    let Some((&flags, log)) = data.split_first() else {
        return;
    };
    let Some(rt) = runtime() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("log");
    let (older, newer) = split_log(flags, log);
    if std::fs::write(&path, newer).is_err()
        || (!older.is_empty() && std::fs::write(dir.path().join("log.1"), older).is_err())
    {
        return;
    }
    let o = log_options(flags, flags >> 5 & 3);
    let tty = flags & 32 != 0;
    let mut rx = rt.block_on(async { stream(path, tty, o, Box::new(|| false)) });
    while rx.blocking_recv().is_some() {}
}

/// A `local` log as `docker logs` reads it (a torn or corrupted file is what a killed monitor
/// or a full disk leaves): the first byte picks the options as for [`logs`], bit 64 splits the
/// rest into a rotated file and the current one, and bit 32 (a tty otherwise) gzips the
/// rotated one.
pub fn local_log(data: &[u8]) {
    use berth_engine::logs::stream_local;
    let Some((&flags, log)) = data.split_first() else {
        return;
    };
    let Some(rt) = runtime() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("container.log");
    let (older, newer) = split_log(flags, log);
    let gz = flags & 32 != 0;
    let older = if gz && !older.is_empty() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        if e.write_all(older).is_err() {
            return;
        }
        let Ok(bytes) = e.finish() else {
            return;
        };
        bytes
    } else {
        older.to_vec()
    };
    let rotated = dir.path().join(if gz {
        "container.log.1.gz"
    } else {
        "container.log.1"
    });
    if std::fs::write(&path, newer).is_err()
        || (!older.is_empty() && std::fs::write(rotated, &older).is_err())
    {
        return;
    }
    let o = log_options(flags, flags >> 6 & 3);
    let mut rx = rt.block_on(async { stream_local(path, false, o, Box::new(|| false)) });
    while rx.blocking_recv().is_some() {}
}

/// The options of `docker logs` the first byte of a log target's input picks: bits 0 and 1 the
/// streams, 2 `since`, 3 `until`, 4 `tail` (of `tail` lines), 7 timestamps.
fn log_options(flags: u8, tail: u8) -> berth_engine::logs::LogOptions {
    berth_engine::logs::LogOptions {
        stdout: flags & 1 != 0,
        stderr: flags & 2 != 0,
        follow: false,
        since: (flags & 4 != 0).then_some(1_700_000_000_000_000_000),
        until: (flags & 8 != 0).then_some(1_700_000_000_500_000_000),
        tail: (flags & 16 != 0).then_some(usize::from(tail)),
        timestamps: flags & 128 != 0,
    }
}

/// A log's bytes as a rotated file and the current one (bit 6 of `flags`), or all current.
fn split_log(flags: u8, log: &[u8]) -> (&[u8], &[u8]) {
    if flags & 64 != 0 {
        log.split_at(log.len() / 2)
    } else {
        (&[][..], log)
    }
}

/// A Dockerfile as `POST /build` reads it: parsed, each instruction expanded with a few
/// variables (as each stage would), the stages planned for every target, and every `.dockerignore`
/// pattern line matched against a few paths.
pub fn dockerfile(data: &[u8]) {
    use berth_build::shell_words::Lex;
    use berth_build::solver::{plan, BuildOptions};
    let text = String::from_utf8_lossy(data);
    let matcher = berth_build::ignore::Matcher::from_dockerignore(&text);
    if let Ok(m) = &matcher {
        for path in ["a", "a/b/c.txt", ".dockerignore", "Dockerfile", "x/../y"] {
            let _ = m.matches(path);
            let _ = m.can_skip_dir(path);
        }
    }
    let Ok(df) = berth_build::parse(&text) else {
        return;
    };
    let lex = Lex::new(df.escape);
    let env: Vec<(String, String)> = vec![
        ("A".into(), "1".into()),
        ("PATH".into(), "/bin".into()),
        ("E".into(), String::new()),
    ];
    for stage in &df.stages {
        for cmd in &stage.commands {
            let _ = cmd.instruction.expand(&lex, &env);
            let _ = cmd.instruction.variables_used(df.escape);
        }
    }
    let platform = berth_build::platform::Platform::default();
    let targets: Vec<Option<String>> = std::iter::once(None)
        .chain(df.stages.iter().filter_map(|s| s.name.clone()).map(Some))
        .collect();
    for target in targets {
        let opts = BuildOptions {
            target,
            ..BuildOptions::default()
        };
        let _ = plan::plan(&df, &opts, &platform);
    }
}

/// A build context as `POST /build` receives it (a tar, compressed or not, or a lone
/// Dockerfile), into an empty directory, then checksummed and written out as a `RUN` bind
/// mount would need it; nothing may appear beside the directory.
pub fn context(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let ctx = dir.path().join("ctx");
    if std::fs::create_dir(&ctx).is_err() {
        return;
    }
    if let Ok(received) = berth_build::context::Context::extract(data, &ctx, "Dockerfile") {
        let files = received.files();
        let _ = berth_build::checksum::checksum(files.source(), &[".".to_string()], &[], None);
        let _ = files.dir();
    }
    let beside: Vec<_> = std::fs::read_dir(dir.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert_eq!(
        beside,
        vec![std::ffi::OsString::from("ctx")],
        "written outside the context"
    );
}

/// The WebSocket frames a client of `attach/ws` sends: read one after the other until the end
/// or an error (a frame past the bound, an unmasked one); each read frame re-encoded (as the
/// server frames its output) with its length right.
pub fn websocket(data: &[u8]) {
    use berth_daemon::websocket::{frame, read_frame, MAX_FRAME};
    let Some(rt) = runtime() else {
        return;
    };
    rt.block_on(async {
        let mut r = data;
        while let Ok(Some(f)) = read_frame(&mut r).await {
            assert!(f.payload.len() as u64 <= MAX_FRAME);
            let encoded = frame(f.opcode & 0x0F, &f.payload);
            assert!(encoded.len() >= f.payload.len() + 2);
        }
    });
}

/// One current-thread tokio runtime for the targets that read through async readers.
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_current_thread().build().ok())
        .as_ref()
}

/// The SPDY/3.1 frames a streaming client (kubectl, crictl) sends to the CRI streaming
/// server: decoded one after the other, header blocks inflated on one zlib stream, until the
/// end or an error (a frame past its bound, a bad or oversized header block). Every decoded
/// frame is encoded again and must decode to itself (header order aside: the encoder groups
/// the values of a name).
pub fn spdy(data: &[u8]) {
    use berth_streaming::spdy::frame::{Decoder, Encoder, Frame, MAX_CONTROL_LEN, MAX_DATA_LEN};
    fn normal(f: Frame) -> Frame {
        let sorted = |mut h: Vec<(String, String)>| {
            h.sort_by(|a, b| a.0.cmp(&b.0));
            h
        };
        match f {
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers,
            } => Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers: sorted(headers),
            },
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => Frame::SynReply {
                stream_id,
                flags,
                headers: sorted(headers),
            },
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => Frame::Headers {
                stream_id,
                flags,
                headers: sorted(headers),
            },
            other => other,
        }
    }
    let mut dec = Decoder::new();
    let mut buf = bytes::BytesMut::from(data);
    let mut enc = Encoder::new();
    let mut again = Decoder::new();
    let mut wire = bytes::BytesMut::new();
    while let Ok(Some(frame)) = dec.decode(&mut buf) {
        if matches!(frame, Frame::Unknown { .. }) {
            continue;
        }
        if let Frame::Data { data, .. } = &frame {
            assert!(data.len() <= MAX_DATA_LEN);
        }
        let mut out = Vec::new();
        if enc.encode(&frame, &mut out).is_err() {
            // A header block past the bounds once re-encoded cannot be checked.
            return;
        }
        if out.len() > MAX_CONTROL_LEN + 8 && !matches!(frame, Frame::Data { .. }) {
            return;
        }
        wire.extend_from_slice(&out);
        match again.decode(&mut wire) {
            Ok(Some(back)) => assert_eq!(normal(back), normal(frame)),
            Ok(None) => panic!("a re-encoded frame is incomplete"),
            // Re-encoding may grow a header block past the bound: not a finding.
            Err(_) => return,
        }
    }
}
