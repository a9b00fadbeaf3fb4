#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

//! Images with the real docker CLI against berthd: save and load, history, the list's filters,
//! prune, `system df`, and login against a registry that wants a password.

mod common;

use common::{python_sdk, skip, text, Daemon};

/// Imports the busybox tarball the fixture made again, as a distinct image (its config differs
/// by `ENV N=<tag>`), named `name` or unnamed (dangling); returns its id.
fn import_again(d: &Daemon, tag: &str, name: Option<&str>) -> String {
    let tar = d.dir.join("busybox.tar").display().to_string();
    let change = format!("ENV N={tag}");
    let mut args = vec!["import", "--change", &change, &tar];
    args.extend(name);
    d.ok(&args).trim().to_string()
}

/// `docker images` lines without the header, whitespace collapsed.
fn image_rows(d: &Daemon, args: &[&str]) -> Vec<String> {
    let mut all = vec!["images"];
    all.extend_from_slice(args);
    d.ok(&all)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn image_id(d: &Daemon, name: &str) -> String {
    d.ok(&["inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string()
}

#[test]
fn save_then_load_restores_a_runnable_image() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let id = image_id(&d, "bb:local");
    let file = d.dir.join("bb.tar");
    let file = file.to_str().unwrap();
    assert_eq!(d.ok(&["save", "-o", file, "bb:local"]), "");
    // The archive holds Docker's manifest.json and an OCI layout.
    let listing = std::process::Command::new("tar")
        .args(["-tf", file])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for entry in ["manifest.json", "index.json", "oci-layout", "blobs/sha256/"] {
        assert!(listing.contains(entry), "{entry} missing: {listing}");
    }
    d.ok(&["rmi", "bb:local"]);
    assert_eq!(d.ok(&["images", "-q"]), "");
    assert_eq!(d.ok(&["load", "-i", file]), "Loaded image: bb:local\n");
    assert_eq!(image_id(&d, "bb:local"), id);
    assert_eq!(
        d.ok(&["run", "--rm", "bb:local", "echo", "loaded"]),
        "loaded\n"
    );
    // `docker load < file` as well; loading what is already there changes nothing.
    let bytes = std::fs::read(file).unwrap();
    let out = d.docker_stdin(&["load"], Some(&bytes));
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(text(&out).0, "Loaded image: bb:local\n");
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 1);
    // A load that moves a tag keeps the image it named, untagged, as Docker does.
    let newer = import_again(&d, "newer", Some("bb:local"));
    let out = d.ok(&["load", "-i", file]);
    assert_eq!(
        out,
        format!(
            "The image bb:local already exists, renaming the old one with ID {newer} to empty string\nLoaded image: bb:local\n"
        )
    );
    assert_eq!(image_id(&d, "bb:local"), id);
    assert_eq!(
        d.ok(&["images", "-q", "--no-trunc", "-f", "dangling=true"]),
        format!("{newer}\n")
    );
}

#[test]
fn save_to_stdout_loads_on_another_daemon() {
    if skip() {
        return;
    }
    let a = Daemon::start();
    a.busybox("bb:local");
    a.ok(&["tag", "bb:local", "example.com/team/bb:2"]);
    let out = a.docker(&["save", "bb:local", "example.com/team/bb:2"]);
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(out.stdout.len() > 100_000, "{} bytes", out.stdout.len());
    let b = Daemon::start();
    let loaded = b.docker_stdin(&["load"], Some(&out.stdout));
    let (stdout, stderr) = text(&loaded);
    assert!(loaded.status.success(), "{stderr}");
    assert!(stdout.contains("Loaded image: bb:local\n"), "{stdout}");
    assert!(
        stdout.contains("Loaded image: example.com/team/bb:2\n"),
        "{stdout}"
    );
    assert_eq!(image_id(&a, "bb:local"), image_id(&b, "bb:local"));
    assert_eq!(
        b.ok(&["run", "--rm", "example.com/team/bb:2", "echo", "moved"]),
        "moved\n"
    );
    // An unknown name: 404 before any byte, docker's message.
    let nowhere = a.dir.join("nosuch.tar");
    let out = a.docker(&["save", "-o", nowhere.to_str().unwrap(), "nosuch:img"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("No such image: nosuch:img"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn a_corrupt_archive_is_refused_and_changes_nothing() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let listing = || {
        d.ok(&[
            "images",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ])
    };
    let before = listing();
    // Not a tar at all.
    let garbage = d.dir.join("garbage.tar");
    std::fs::write(&garbage, vec![0x5a; 10_000]).unwrap();
    let out = d.docker(&["load", "-i", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(!text(&out).1.trim().is_empty(), "no error printed");
    // A tar that is no image archive.
    let plain = d.dir.join("plain.tar");
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&plain)
        .arg("-C")
        .arg(&d.dir)
        .arg("garbage.tar")
        .status()
        .unwrap();
    assert!(status.success());
    let out = d.docker(&["load", "-i", plain.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("invalid image archive"),
        "{:?}",
        text(&out)
    );
    // A real archive cut short.
    let file = d.dir.join("bb.tar");
    d.ok(&["tag", "bb:local", "cut:1"]);
    d.ok(&["save", "-o", file.to_str().unwrap(), "cut:1"]);
    d.ok(&["rmi", "cut:1"]);
    let bytes = std::fs::read(&file).unwrap();
    let out = d.docker_stdin(&["load"], Some(&bytes[..bytes.len() / 2]));
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert_eq!(listing(), before);
}

#[test]
fn history_shows_the_config_history() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let id = image_id(&d, "bb:local");
    let out = d.ok(&["history", "bb:local"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"],
        "{out}"
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id[7..19]), "{out}");
    assert!(row.contains("berth import"), "{out}");
    assert!(row.contains("Imported from tarball"), "{out}");
    assert!(row.contains("ago"), "{out}");
    assert_eq!(lines.next(), None, "{out}");
    let out = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Comment}}",
        "bb:local",
    ]);
    assert_eq!(out, format!("{id}|berth import|Imported from tarball\n"));
    let out = d.docker(&["history", "nosuch:img"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("No such image: nosuch:img"));
}

#[test]
fn images_list_filters_and_columns() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&["tag", "bb:local", "bb:other"]);
    d.ok(&["tag", "bb:local", "cc:1"]);
    // An unnamed import: dangling, `<none>:<none>`. Creation times are in seconds, and
    // `since`/`before` below compare them: a second apart.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let dangling = import_again(&d, "dangling", None);
    let short = &dangling[7..19];
    let rows = image_rows(&d, &[]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(
        rows.iter()
            .any(|r| r.starts_with(&format!("<none> <none> {short}"))),
        "{rows:?}"
    );
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    // `-a` lists the same images (the CREATED column, relative to now, may have moved on
    // between the two listings: compared without it).
    let without_created = |rows: Vec<String>| {
        sorted(
            rows.iter()
                .map(|r| {
                    let w: Vec<&str> = r.split(' ').collect();
                    format!("{} {} {}", w[0], w[1], w[2])
                })
                .collect(),
        )
    };
    assert_eq!(
        without_created(image_rows(&d, &["-a"])),
        without_created(rows)
    );
    assert_eq!(
        d.ok(&["images", "-q", "-f", "dangling=true"]),
        format!("{short}\n")
    );
    let named = d.ok(&["images", "-q", "-f", "dangling=false"]);
    assert_eq!(named.lines().count(), 3, "{named}");
    assert!(!named.contains(short));
    // reference: a glob on the name, with or without the tag.
    let repos = |pattern: &str| -> Vec<String> {
        image_rows(&d, &["-f", &format!("reference={pattern}")])
            .iter()
            .map(|r| r.split(' ').take(2).collect::<Vec<_>>().join(":"))
            .collect()
    };
    assert_eq!(repos("bb"), ["bb:local", "bb:other"]);
    assert_eq!(repos("bb*"), ["bb:local", "bb:other"]);
    assert_eq!(repos("bb:o*"), ["bb:other"]);
    assert_eq!(repos("*:1"), ["cc:1"]);
    assert!(repos("zz*").is_empty());
    // --digests: a DIGEST column, `<none>` for images never pulled.
    let out = d.ok(&["images", "--digests", "bb"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header[..3], ["REPOSITORY", "TAG", "DIGEST"], "{out}");
    assert!(out.lines().nth(1).unwrap().contains("<none>"), "{out}");
    // before / since, by image.
    let out = d.ok(&["images", "-q", "-f", "since=bb:local"]);
    assert_eq!(out, format!("{short}\n"));
    // (`-q` prints an id once per tag, as Docker does.)
    let out = d.ok(&["images", "-q", "-f", &format!("before={dangling}")]);
    let bb = &image_id(&d, "bb:local")[7..19];
    assert_eq!(out, format!("{bb}\n{bb}\n{bb}\n"));
    let out = d.docker(&["images", "-f", "nosuch=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("invalid filter 'nosuch'"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn image_prune_removes_dangling_then_unused_and_keeps_used() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    let used = image_id(&d, "bb:local");
    d.ok(&["create", "--name", "user", "bb:local", "true"]);
    let unused = import_again(&d, "cc", Some("cc:1"));
    let dangling = import_again(&d, "dangling", None);
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 3);
    let out = d.ok(&["image", "prune", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains(&format!("deleted: {dangling}")), "{out}");
    assert!(!out.contains(&unused), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 2);
    // Nothing dangling left.
    let out = d.ok(&["image", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    // -a: every image no container uses.
    let out = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: cc:1"), "{out}");
    assert!(out.contains(&format!("deleted: {unused}")), "{out}");
    assert!(!out.contains(&used), "{out}");
    assert_eq!(image_rows(&d, &[]).len(), 1);
    assert_eq!(image_id(&d, "bb:local"), used);
    // Once the container is gone, bb:local goes too, and its layer with it.
    d.ok(&["rm", "user"]);
    let out = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: bb:local"), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert_eq!(d.ok(&["images", "-q"]), "");
}

#[test]
fn system_df_prints_dockers_tables() {
    if skip() {
        return;
    }
    let d = Daemon::start();
    d.busybox("bb:local");
    d.ok(&[
        "run",
        "--name",
        "w1",
        "bb:local",
        "sh",
        "-c",
        "echo data > /file",
    ]);
    import_again(&d, "dangling", None);
    let out = d.ok(&["system", "df"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{out}"
    );
    assert_eq!(rows[1][..3], ["Images", "2", "1"], "{out}");
    assert_eq!(rows[2][..3], ["Containers", "1", "0"], "{out}");
    assert_eq!(rows[3][..4], ["Local", "Volumes", "0", "0"], "{out}");
    assert_eq!(rows[4][..4], ["Build", "Cache", "0", "0"], "{out}");
    assert!(rows[1][3].ends_with("MB"), "{out}");
    let out = d.ok(&["system", "df", "-v"]);
    assert!(out.contains("Images space usage:"), "{out}");
    assert!(out.contains("Containers space usage:"), "{out}");
    assert!(out.contains("Local Volumes space usage:"), "{out}");
    let bb = out
        .lines()
        .find(|l| l.starts_with("bb "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(bb.contains("local"), "{out}");
    let w1 = out
        .lines()
        .find(|l| l.ends_with(" w1"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(w1.contains("bb:local"), "{out}");
    let out = d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(out.contains("Images 2\n"), "{out}");
}

#[test]
fn login_then_push_and_pull_with_the_saved_credential() {
    if skip() {
        return;
    }
    let registry = berth_tests::registry::Registry::start_with_htpasswd("alice", "s3cret").unwrap();
    let host = registry.host();
    let d = Daemon::start();
    d.busybox("bb:local");
    let name = format!("{host}/team/bb:1");
    d.ok(&["tag", "bb:local", &name]);
    // Without a login the registry refuses the push.
    let out = d.docker(&["push", &name]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    // A wrong password: docker's 401 message, nothing saved.
    let out = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &host],
        Some(b"wrong\n"),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("Error response from daemon: login attempt to")
            && stderr.contains("failed with status: 401 Unauthorized"),
        "{stderr}"
    );
    let config = d.dir.join("docker-config/config.json");
    let saved = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(!saved.contains(&host), "{saved}");
    // The right one.
    let out = d.docker_stdin(
        &["login", "-u", "alice", "--password-stdin", &host],
        Some(b"s3cret\n"),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("Login Succeeded"), "{stdout}");
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains(&host), "{saved}");
    // Push and pull with what the CLI saved.
    let out = d.ok(&["push", &name]);
    assert!(out.contains("1: digest: sha256:"), "{out}");
    d.ok(&["rmi", &name, "bb:local"]);
    let out = d.ok(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    // The pull records the repository digest: RepoDigests, the DIGEST column.
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let repo_digests = d.ok(&["inspect", "--format", "{{json .RepoDigests}}", &name]);
    assert_eq!(
        repo_digests.trim(),
        format!("[\"{host}/team/bb@{digest}\"]")
    );
    let rows = image_rows(&d, &["--digests"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with(&format!("{host}/team/bb 1 {digest}")),
        "{rows:?}"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            &format!("{host}/team/bb@{digest}"),
            "echo",
            "ok"
        ]),
        "ok\n"
    );
    // While a container uses it, rmi is refused and no name is lost.
    d.ok(&["create", "--name", "c1", &name, "true"]);
    let out = d.docker(&["rmi", &name]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    assert!(text(&out).1.contains("conflict"), "{:?}", text(&out));
    let again = d.ok(&["inspect", "--format", "{{json .RepoDigests}}", &name]);
    assert_eq!(again, repo_digests);
    d.ok(&["rm", "c1"]);
    // rmi of the last tag takes the digest reference along.
    let out = d.ok(&["rmi", &name]);
    assert!(out.contains(&format!("Untagged: {name}")), "{out}");
    assert!(
        out.contains(&format!("Untagged: {host}/team/bb@{digest}")),
        "{out}"
    );
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(d.ok(&["images", "-q"]), "");
    let out = d.ok(&["logout", &host]);
    assert!(out.contains("Removing login credentials"), "{out}");
}

/// `GET /distribution/{name}/json` asks the registry (nothing is pulled): the Python SDK's
/// `get_registry_data` gets the manifest's digest and its platform; a missing tag is a 404.
#[test]
fn the_registry_is_asked_what_an_image_is_without_pulling_it() {
    if skip() {
        return;
    }
    let registry = berth_tests::registry::Registry::start().unwrap();
    let host = registry.host();
    let d = Daemon::start();
    d.busybox("bb:local");
    let name = format!("{host}/dist/bb:1");
    d.ok(&["tag", "bb:local", &name]);
    let pushed = d.ok(&["push", &name]);
    let digest = pushed
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("{pushed}"))
        .to_string();
    d.ok(&["rmi", &name]);
    let got = python_sdk(
        &d,
        &format!(
            r#"
import docker
c = docker.from_env()
r = c.images.get_registry_data("{name}")
print(r.id)
print(r.has_platform("linux/amd64"), r.has_platform("linux/arm64"))
try:
    c.images.get_registry_data("{host}/dist/bb:nosuch")
except docker.errors.NotFound as e:
    print("not found")
"#
        ),
    );
    if got.is_empty() {
        return; // no SDK outside CI (python_sdk says so)
    }
    let arch_is_amd64 = std::env::consts::ARCH == "x86_64";
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], digest, "{got}");
    assert_eq!(
        lines[1],
        format!("{} False", if arch_is_amd64 { "True" } else { "False" }),
        "{got}"
    );
    assert_eq!(lines[2], "not found", "{got}");
    // Nothing was pulled.
    let images = d.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!images.contains("dist/bb"), "{images}");
}

/// A registry index that answers the v1 search API (Docker Hub's index does; the registry
/// server the other tests use does not), on loopback: it records the queries it got.
struct SearchIndex {
    port: u16,
    queries: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SearchIndex {
    fn start() -> SearchIndex {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = queries.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                // The headers, up to the empty line.
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let body = if target.starts_with("/v1/search") {
                    seen.lock().unwrap().push(target.clone());
                    r#"{"num_results":2,"query":"bb","results":[
                        {"name":"team/bb","description":"a busy box","star_count":5,"is_official":false,"is_automated":true},
                        {"name":"other/bb","description":"","star_count":1,"is_official":true,"is_automated":false}]}"#
                } else {
                    "{}"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        SearchIndex { port, queries }
    }
}

#[test]
fn search_asks_the_registrys_index_and_filters_as_dockerd() {
    if skip() {
        return;
    }
    let index = SearchIndex::start();
    let d = Daemon::start();
    let term = format!("127.0.0.1:{}/bb", index.port);
    let out = d.ok(&["search", &term]);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(
        out.contains("team/bb") && out.contains("a busy box"),
        "{out}"
    );
    assert!(out.contains("other/bb"), "{out}");
    let out = d.ok(&["search", "--filter", "stars=3", "--limit", "5", &term]);
    assert!(
        out.contains("team/bb") && !out.contains("other/bb"),
        "{out}"
    );
    let out = d.ok(&["search", "--filter", "is-official=true", &term]);
    assert!(
        !out.contains("team/bb") && out.contains("other/bb"),
        "{out}"
    );
    assert_eq!(
        index.queries.lock().unwrap().as_slice(),
        [
            "/v1/search?q=bb&n=25",
            "/v1/search?q=bb&n=5",
            "/v1/search?q=bb&n=25"
        ]
    );
    // dockerd's refusals.
    let out = d.docker(&["search", "--limit", "101", &term]);
    assert!(
        text(&out)
            .1
            .contains("limit 101 is outside the range of [1, 100]"),
        "{:?}",
        text(&out)
    );
    let out = d.docker(&["search", "--filter", "stars=many", &term]);
    assert!(
        text(&out).1.contains("invalid filter 'stars=[many]'"),
        "{:?}",
        text(&out)
    );
    let got = python_sdk(
        &d,
        &format!(
            r#"
import docker
print(sorted(r["name"] for r in docker.from_env().images.search("{term}")))
"#
        ),
    );
    if !got.is_empty() {
        assert_eq!(got.trim(), "['other/bb', 'team/bb']");
    }
}
