#!/usr/bin/env python3
"""Records the key paths of dockerd's answers for scenario.txt, as golden lists.

Usage: DOCKER_HOST=unix:///path/to/docker.sock crates/daemon/tests/golden/record.py
Run it against a dockerd (20.10) with nothing of the scenario's names; it makes them, records,
and removes them. The Rust test (api_inspect_keys.rs) walks berthd's answers the same way.
"""
import http.client, json, os, re, socket, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
SOCK = os.environ["DOCKER_HOST"].removeprefix("unix://")
FIELD = re.compile(r"^[A-Z][A-Za-z0-9]*$")


class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(SOCK)


def get(path):
    c = Conn("localhost")
    c.request("GET", path)
    r = c.getresponse()
    assert r.status == 200, (path, r.status, r.read())
    return json.loads(r.read())


def paths(v, prefix, out):
    if isinstance(v, dict):
        for k, x in v.items():
            name = k if FIELD.match(k) else "*"
            p = f"{prefix}.{name}" if prefix else name
            out.add(p)
            paths(x, p, out)
    elif isinstance(v, list):
        for x in v:
            paths(x, prefix + "[]", out)


def main():
    lines = [l.split() for l in open(os.path.join(HERE, "scenario.txt")) if l.strip() and not l.startswith("#")]
    for l in lines:
        if l[0] == "docker":
            subprocess.run(l, check=True, stdout=subprocess.DEVNULL)
    time.sleep(3)  # the health check's first results
    for l in lines:
        if l[0] == "get":
            path = re.sub(r"\{exec:([^}]+)\}", lambda m: get(f"/containers/{m.group(1)}/json")["ExecIDs"][0], l[2])
            out = set()
            paths(get(path), "", out)
            with open(os.path.join(HERE, l[1] + ".keys"), "w") as f:
                f.write("".join(p + "\n" for p in sorted(out)))
    subprocess.run(["docker", "rm", "-f", "plain", "rich", "checked", "ended"], stdout=subprocess.DEVNULL)
    subprocess.run(["docker", "rmi", "gimage"], stdout=subprocess.DEVNULL)
    subprocess.run(["docker", "network", "rm", "gnet"], stdout=subprocess.DEVNULL)
    subprocess.run(["docker", "volume", "rm", "gvol"], stdout=subprocess.DEVNULL)


main()
