#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the inputs of Berth's tests.

Run from anywhere: python3 fuzz/scripts/make-seeds.py. Files that exist are rewritten; the
inputs of past crashes (named crash-*, regression-*) are not touched.
"""
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import tarfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")
METHODS = {"GET": 0, "POST": 1, "PUT": 2, "DELETE": 3, "HEAD": 4}


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# route: method byte + request target
for i, (m, t) in enumerate([
    ("POST", "/v1.41/containers/abc/start"),
    ("GET", "/version"),
    ("GET", "/v1.41/images/localhost:5000/bb/json"),
    ("DELETE", "/v1.41/images/a/b:c"),
    ("GET", "/v1.43/containers/json?all=1&filters=%7B%22status%22%3A%7B%22running%22%3Atrue%7D%7D&limit=5"),
    ("GET", "/containers/json?filters=%7B%22a%22%3A1%7D&t=10&x=a+b"),
    ("POST", "/v1.43/images/create?fromImage=busybox&tag=latest"),
    ("POST", "/v1.43/images/create?fromSrc=-&repo=bb&tag=local&changes=CMD%20%5B%22sh%22%5D"),
    ("POST", "/v1.43/containers/x/kill?signal=SIGTERM"),
    ("POST", "/v1.43/containers/x/stop?t=10&signal=9"),
    ("GET", "/events?since=1700000000&until=1e300&filters=%7B%22type%22%3A%5B%22container%22%5D%7D"),
    ("GET", "/v1.43/containers/x/logs?stdout=1&stderr=1&tail=10&since=0"),
    ("POST", "/v1.43/containers/x/attach?stream=1&stdin=1&detachKeys=ctrl-a,x"),
    ("GET", "/v1.99/version"),
    ("PUT", "/containers/x/archive?path=%2Ftmp&noOverwriteDirNonDir=true"),
]):
    put("route", f"seed-{i:02}", bytes([METHODS[m]]) + t.encode())
# Issue 12: '%', one hex digit, then 'é'.
put("route", "regression-issue-12", b"\x00/containers/json?all=%a\xc3\xa9")

# filters: the decoded JSON
for i, f in enumerate([
    '{"status":{"running":true,"exited":true},"x":{"y":false}}',
    '{"label":["com.docker.compose.project=p","a=b"]}',
    '{"reference":["bb*","b?:l[a-z]cal","*/bb","[^b]b"]}',
    '{"dangling":["true"],"label!":["a"]}',
    '[1]',
    '{',
    'a*b?c*x',
    '[\\]a]',
]):
    put("filters", f"seed-{i:02}", f)
# Recursion per star: stack overflow and exponential time, once.
put("filters", "regression-stars", '{"reference":["' + "*" * 3000 + '"]}')
put("filters", "regression-star-a", "*a" * 40 + "c")

# body: type byte + JSON
create = {
    "Image": "busybox", "Cmd": ["echo", "hi"], "Env": ["A=1"], "Tty": True, "User": "1000:1000",
    "StopSignal": "SIGUSR1", "ExposedPorts": {"80/tcp": {}},
    "HostConfig": {
        "Binds": ["/a:/b:ro", "vol:/data:nocopy", "bad"], "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        "SecurityOpt": ["seccomp=unconfined", "no-new-privileges"], "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"],
        "Tmpfs": {"/t": "size=1m"}, "Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 2}],
        "Memory": 1 << 20, "NanoCpus": 500000000, "CpusetCpus": "0", "PidsLimit": 10, "ShmSize": 1 << 20,
        "Sysctls": {"net.ipv4.ip_forward": "1"}, "GroupAdd": ["10"], "ConsoleSize": [24, 80], "Init": True,
    },
}
bodies = [
    (0, json.dumps(create)),
    (0, '{"Image": "bb:local", '),
    (0, '{"Image": "bb:local"} trailing'),
    (0, '{"Image": 5}'),
    (0, '{"Image": "bb:local", "Cmd": "not a list"}'),
    (0, '{"Image": "nosuch:img", "Cmd": ["true"]}'),
    (1, '{"Cmd": ["true"], "AttachStdout": true, "AttachStderr": true, "DetachKeys": "ctrl-p,ctrl-q"}'),
    (1, '{nope'),
    (2, '{"Detach": false, "Tty": true, "ConsoleSize": [1, 2]}'),
    (3, '{"Name": "n", "Driver": "bridge", "Internal": true, "IPAM": {"Config": [{"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"}]}, "Options": {"cni.conflist": "/x"}}'),
    (4, '{"Container": "c", "EndpointConfig": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.1.0.9"}}}'),
    (5, '{"Container": "c", "Force": true}'),
    (6, '{"Name": "v", "Driver": "local", "DriverOpts": {"type": "none", "o": "bind", "device": "/x"}, "Labels": {"a": "b"}}'),
    (7, '{"username": "u", "password": "p", "serveraddress": "localhost:5000"}'),
    (8, "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJzZXJ2ZXJhZGRyZXNzIjoibG9jYWxob3N0OjUwMDAifQ=="),
    (9, json.dumps(create["HostConfig"])),
    (9, '{"Privileged": true, "SecurityOpt": ["seccomp={\\"defaultAction\\":\\"SCMP_ACT_ALLOW\\",\\"syscalls\\":[{\\"names\\":[\\"read\\"],\\"action\\":\\"SCMP_ACT_ERRNO\\"}]}"]}'),
]
for i, (kind, text) in enumerate(bodies):
    put("body", f"seed-{i:02}", bytes([kind]) + text.encode())
# Overflows in the OCI config's resources (memory * 2, nano_cpus * 100000) and log sizes.
put("body", "regression-overflow", b"\x09" + json.dumps({
    "Memory": 9223372036854775807, "NanoCpus": 9223372036854775807,
    "LogConfig": {"Type": "json-file", "Config": {"max-size": "99999999999999999g"}},
}).encode())

# reference
D = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
for i, r in enumerate([
    "busybox", "busybox:1.36", "team/app", "index.docker.io/library/busybox", "localhost/app",
    "localhost:5000/team/app:v1", f"localhost:5000/team/app@{D}", f"busybox:1.36@{D}",
    "registry.example.com/a/b/c", "[::1]:5000/x:y", "Upper/case", "a__b/c--d", "x" * 300,
    f"a@sha512:{'0' * 128}",
]):
    put("reference", f"seed-{i:02}", r)


# layer: mode byte + tar (plain, gzip, zstd)
def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            info = tarfile.TarInfo(e["name"])
            info.type = e.get("type", tarfile.REGTYPE)
            info.mode = e.get("mode", 0o644)
            info.uid = e.get("uid", 0)
            info.gid = e.get("gid", 0)
            info.mtime = 1700000000
            info.linkname = e.get("link", "")
            info.devmajor = e.get("major", 0)
            info.devminor = e.get("minor", 0)
            if "pax" in e:
                info.pax_headers = e["pax"]
            data = e.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


layer = tar_bytes([
    {"name": "./", "type": tarfile.DIRTYPE, "mode": 0o755},
    {"name": "etc/", "type": tarfile.DIRTYPE, "mode": 0o755},
    {"name": "etc/hostname", "data": b"berth\n"},
    {"name": "bin/", "type": tarfile.DIRTYPE},
    {"name": "bin/sh", "data": b"#!", "mode": 0o4755, "uid": 1000, "gid": 1000,
     "pax": {"SCHILY.xattr.user.a": "b", "mtime": "1700000000.5"}},
    {"name": "bin/ash", "type": tarfile.LNKTYPE, "link": "bin/sh"},
    {"name": "bin/link", "type": tarfile.SYMTYPE, "link": "../etc/hostname"},
    {"name": "abs", "type": tarfile.SYMTYPE, "link": "/etc/passwd"},
    {"name": "fifo", "type": tarfile.FIFOTYPE},
    {"name": "null", "type": tarfile.CHRTYPE, "major": 1, "minor": 3},
    {"name": "etc/.wh.gone", "data": b""},
    {"name": "bin/.wh..wh..opq", "data": b""},
])
put("layer", "seed-tar-overlay", b"\x00" + layer)
put("layer", "seed-tar-delete", b"\x01" + layer)
put("layer", "seed-gzip", b"\x00" + gzip.compress(layer, mtime=0))
zst = subprocess.run(["zstd", "-q", "-c"], input=layer, capture_output=True, check=True).stdout
put("layer", "seed-zstd", b"\x01" + zst)
put("layer", "seed-escape", b"\x00" + tar_bytes([
    {"name": "../escape", "data": b"x"},
    {"name": "link", "type": tarfile.SYMTYPE, "link": "/"},
    {"name": "link/etc/x", "data": b"x"},
    {"name": "hard", "type": tarfile.LNKTYPE, "link": "../../etc/passwd"},
]))
put("layer", "seed-replace", b"\x01" + tar_bytes([
    {"name": "d", "type": tarfile.DIRTYPE},
    {"name": "d/f", "data": b"1"},
    {"name": "d", "data": b"now a file"},
    {"name": "d", "type": tarfile.DIRTYPE},
    {"name": ".wh.d", "data": b""},
]))


# archive: docker save (manifest.json) and an OCI layout
def archive_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[0]
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


small = tar_bytes([{"name": "hello", "data": b"hi\n"}])
diff = "sha256:" + hashlib.sha256(small).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                     "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
config_hex = hashlib.sha256(config).hexdigest()
manifest = json.dumps([{"Config": f"{config_hex}.json", "RepoTags": ["bb:fuzz"],
                        "Layers": ["l1/layer.tar"]}]).encode()
put("archive", "seed-docker", archive_tar([
    ("manifest.json", manifest), (f"{config_hex}.json", config), ("l1/", None), ("l1/layer.tar", small),
]))
put("archive", "seed-docker-symlink", archive_tar([
    ("manifest.json", manifest), (f"{config_hex}.json", config), ("l0/", None), ("l0/layer.tar", small),
    ("l1/", None), ("l1/layer.tar", ("../l0/layer.tar",)),
]))
put("archive", "seed-escape", archive_tar([
    ("manifest.json", json.dumps([{"Config": "../../etc/passwd", "Layers": ["/etc/shadow"]}]).encode()),
]))
layer_hex = hashlib.sha256(small).hexdigest()
oci_manifest = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config), "digest": f"sha256:{config_hex}"},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": len(small), "digest": f"sha256:{layer_hex}"}],
}).encode()
mhex = hashlib.sha256(oci_manifest).hexdigest()
index = json.dumps({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(oci_manifest), "digest": f"sha256:{mhex}",
    "annotations": {"io.containerd.image.name": "docker.io/library/bb:oci", "org.opencontainers.image.ref.name": "oci"},
}]}).encode()
put("archive", "seed-oci", archive_tar([
    ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index), ("blobs/", None), ("blobs/sha256/", None),
    (f"blobs/sha256/{config_hex}", config), (f"blobs/sha256/{layer_hex}", small), (f"blobs/sha256/{mhex}", oci_manifest),
]))
put("archive", "seed-empty", b"")


# dns: messages
def name(text):
    out = b""
    for label in text.split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def query(qname, qtype=1, qid=0x1234, flags=0x0100, qd=1):
    return struct.pack(">HHHHHH", qid, flags, qd, 0, 0, 0) + name(qname) + struct.pack(">HH", qtype, 1)


for i, m in enumerate([
    query("web"), query("WEB.net"), query("many"), query("many", 255), query("web", 28),
    query("2.0.9.10.in-addr.arpa", 12), query("3.0.9.10.in-addr.arpa", 12), query("4.0.9.10.in-addr.arpa", 12),
    query("example.com"), query("web", flags=0x8100), query("web", flags=0x2900), query("web", qd=2),
    struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01",
    struct.pack(">HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\x03abc\xc0\x0c\x00\x01\x00\x01",
    b"\x12\x34",
]):
    put("dns", f"seed-{i:02}", m)

# stdcopy
put("stdcopy", "seed-frames", b"\x01\0\0\0\0\0\0\x03hi\n" + b"\x02\0\0\0\0\0\0\x04err\n" + b"\x01\0\0\0\0\0\0\0")
put("stdcopy", "seed-cut", b"\x01\0\0")
put("stdcopy", "seed-bad-stream", b"\x09\0\0\0\0\0\0\x01x")
# A 4 GiB size in a header was allocated before reading.
put("stdcopy", "regression-huge-size", b"\x01\0\0\0\xff\xff\xff\xffabc")

# monitor
lines = [
    '{"op":"attach","stdin":true,"stdout":true}',
    '{"version":1,"op":"start"}',
    '{"version":1,"op":"resize","height":10,"width":20,"exec_id":null}',
    '{"version":1,"op":"exec","exec_id":"e1","process":{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0}},"tty":false,"stdin":false}',
    '{"version":2,"op":"wait"}', '{"op":"state"}', '{"op":"exec_state","exec_id":"e1"}', '{"op":"shutdown"}',
    '{"ok":true}', '{"error":"x"}', '{"ok":true,"pid":42}',
    '{"exit_code":137,"oom_killed":true,"finished_at":"2024-01-01T00:00:00Z"}',
    '{"status":"running","pid":42,"exit_code":null,"started_at":"2024-01-01T00:00:00Z","finished_at":null}',
    '{"running":false,"pid":7,"exit_code":0}',
]
put("monitor", "seed-lines", "\n".join(lines) + "\n")
for i, l in enumerate(lines):
    put("monitor", f"seed-{i:02}", l)

# logs: flags byte + json-file
log = (
    '{"log":"a\\n","stream":"stdout","time":"2024-01-01T00:00:00.123456789Z"}\n'
    '{"log":"b\\n","stream":"stderr","time":"2024-01-01T00:00:01Z"}\n'
    '{"log":"no time\\n","stream":"stdout"}\n'
    '{"log":"\\u00e9\\ud83d\\ude00","stream":"stdout","time":"not a time"}\n'
).encode() + b"\xff\xfe not json\n" + b'{"log":"cut'
for flags in [0x03, 0x13 | (2 << 5), 0x07, 0x0b, 0x33]:
    put("logs", f"seed-{flags:02x}", bytes([flags]) + log)


# spdy: SPDY/3.1 frames from a client of the CRI streaming server (crates/streaming). Header
# blocks are compressed on one zlib stream with the SPDY/3 dictionary, as spdystream does.
def spdy_seeds():
    import zlib

    words = ("options head post put delete trace accept accept-charset accept-encoding "
             "accept-language accept-ranges age allow authorization cache-control connection "
             "content-base content-encoding content-language content-length content-location "
             "content-md5 content-range content-type date etag expect expires from host if-match "
             "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
             "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
             "server te trailer transfer-encoding upgrade user-agent vary via warning "
             "www-authenticate method get status").split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417"
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
            "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    dictionary = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()
    assert len(dictionary) == 1423

    def control(kind, flags, body):
        return struct.pack(">HHB", 0x8003, kind, flags) + len(body).to_bytes(3, "big") + body

    def data(sid, flags, payload):
        return struct.pack(">IB", sid, flags) + len(payload).to_bytes(3, "big") + payload

    def block(headers):
        out = struct.pack(">I", len(headers))
        for k, v in headers:
            out += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        return out

    z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary)

    def syn(sid, headers, flags=0):
        zb = z.compress(block(headers)) + z.flush(zlib.Z_SYNC_FLUSH)
        return control(1, flags, struct.pack(">IIBB", sid, 0, 0, 0) + zb)

    exec_session = b"".join([
        syn(1, [("streamtype", "error")]),
        syn(3, [("streamtype", "stdin")]),
        syn(5, [("streamtype", "stdout")]),
        syn(7, [("streamtype", "resize")]),
        data(3, 0, b"echo hello\n"),
        data(7, 0, b'{"Width":80,"Height":24}\n'),
        data(3, 1, b""),
        control(6, 0, struct.pack(">I", 1)),
        control(9, 0, struct.pack(">II", 5, 65536)),
        control(4, 0, struct.pack(">IBBHI", 1, 0, 0, 7, 1 << 20)),
        control(3, 0, struct.pack(">II", 7, 5)),
        control(7, 0, struct.pack(">II", 7, 0)),
    ])
    put("spdy", "exec-session", exec_session)
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, dictionary)
    put("spdy", "port-forward", b"".join([
        syn(1, [("port", "80"), ("requestid", "0"), ("streamtype", "error")]),
        syn(3, [("port", "80"), ("requestid", "0"), ("streamtype", "data")]),
        data(3, 1, b"GET / HTTP/1.0\r\n\r\n"),
    ]))
    put("spdy", "huge-length", control(1, 0, b"") [:5] + b"\xff\xff\xff")
    put("spdy", "bad-zlib", control(1, 0, struct.pack(">IIBB", 1, 0, 0, 0) + b"\x78\xbbnot deflate"))
    put("spdy", "spdy2-ping", struct.pack(">HHBBBBI", 0x8002, 6, 0, 0, 0, 4, 1))
    put("spdy", "unknown-and-short", control(0x0A, 0, b"abc") + control(6, 0, b"\x00\x00"))


spdy_seeds()
