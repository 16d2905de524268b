"""Two machines on loopback for the on-premises cluster test: a head at 127.0.0.2 and a worker at 127.0.0.3,
each an OpenSSH server in namespaces of its own, logged into with a key the lab makes.

Not 127.0.0.1 for the head: Ray takes a cluster address of 127.0.0.1 (or localhost) for "this machine" and
replaces it with the node's own address, so a worker told to join 127.0.0.1:6379 looks for the head at
its own address (seen: "Failed to connect to GCS at address 127.0.0.2:6379") and never joins.

Both nodes share one network namespace whose only interface is loopback, without routes: whatever Ray
binds (it binds its services to every interface, README: Security) can be reached on 127.0.0.0/8 alone, and
nothing in the lab can reach an address outside it. Each node has its own PID namespace, so `ray stop` on a
node (run by `ray up`, `ray down` and the autoscaler) ends that node's Ray and nothing else on this
machine, as on separate machines; its own UTS namespace (its own hostname); and its own mount namespace,
where /etc/passwd gives root a home directory under the lab's directory (SSH logins, `~` in the cluster
config and the key file the autoscaler uses all land there) and /etc/hosts names both nodes. Logins get
RAY_TMPDIR, a short directory of the node's (Ray's socket paths must stay under 108 characters).

Needs root (namespaces, logins as root), OpenSSH's server and client, rsync, unshare and nsenter. Servers
are stopped by process id: ending a node's sshd, the first process of its PID namespace, ends everything
left in that namespace.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SSHD = "/usr/sbin/sshd"
TOOLS = ("ssh", "ssh-keygen", "rsync", "unshare", "nsenter", "ip")
MARK = "FROZEN_SLT_TEST_MARK"


def missing_requirement() -> str | None:
    """One line naming what this machine lacks for the lab, or None."""
    if os.geteuid() != 0:
        return "the on-prem cluster test needs root (it runs sshd in namespaces of its own and logs in as root)"
    if not Path(SSHD).is_file():
        return (f"OpenSSH's server is not installed ({SSHD} is missing) and .ci/run could not install it: "
                "apt-get install openssh-server needs a reachable package registry")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the on-prem cluster test needs {', '.join(missing)} (.ci/run installs rsync with openssh-server)"
    return None


def namespace(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:  # gone, or a kernel thread
        return None


def processes_in(link: str, kind: str) -> list[psutil.Process]:
    """Every live process in the ``kind`` namespace ``link`` (as /proc/<pid>/ns/<kind> reads)."""
    found = []
    for pid in psutil.pids():
        if namespace(pid, kind) == link:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except psutil.Error:
                continue
    return found


def describe(processes: list[psutil.Process]) -> list[str]:
    out = []
    for process in processes:
        try:
            out.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            continue
    return out


def poll(condition, timeout: float, interval: float = 0.5):
    """``condition()`` once it is truthy, else its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


@dataclass
class Node:
    name: str
    address: str
    hostname: str
    home: Path
    ray_tmp: Path
    starter: subprocess.Popen | None = None
    sshd: psutil.Process | None = None

    @property
    def pid_namespace(self) -> str:
        return namespace(self.sshd.pid, "pid")

    def processes(self) -> list[psutil.Process]:
        """The node's processes, its sshd listener left out."""
        return [p for p in processes_in(self.pid_namespace, "pid") if p.pid != self.sshd.pid]


@dataclass
class Lab:
    root: Path
    mark: str
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = self.root / "id_ed25519"
        for name, address in (("head", "127.0.0.2"), ("worker", "127.0.0.3")):
            self.nodes.append(Node(name, address, f"onprem-{name}", self.root / name / "home",
                                   Path(tempfile.mkdtemp(prefix=f"rt-{name[0]}-"))))
        self.head, self.worker = self.nodes
        self.net_namespace: str | None = None

    def start(self) -> None:
        """Make the keys and both nodes' files, start the head's sshd in new namespaces, then the worker's in
        the head's network namespace; return once both listen on port 22."""
        self.root.mkdir(parents=True, exist_ok=True)
        for key in (self.key, self.root / "host_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (self.root / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        hosts = self.root / "hosts"
        hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{n.address} {n.hostname}\n" for n in self.nodes))
        for node in self.nodes:
            self._write_node_files(node)
        head_script = "ip link set lo up && " + self._node_script(self.head, hosts)
        self._start(self.head, ["unshare", "--net", "--pid", "--mount-proc", "--uts", "--fork", "--kill-child",
                                "sh", "-c", head_script])
        self.net_namespace = namespace(self.head.sshd.pid, "net")
        self._start(self.worker, ["nsenter", f"--net=/proc/{self.head.sshd.pid}/ns/net", "unshare", "--pid",
                                  "--mount-proc", "--uts", "--fork", "--kill-child", "sh", "-c",
                                  self._node_script(self.worker, hosts)])

    def _write_node_files(self, node: Node) -> None:
        node.home.mkdir(parents=True)
        passwd = "".join(self._home_line(line, node.home) for line in Path("/etc/passwd").read_text().splitlines(True))
        (node.home.parent / "passwd").write_text(passwd)
        (node.home.parent / "sshd_config").write_text(
            f"ListenAddress {node.address}:22\nHostKey {self.root / 'host_ed25519'}\n"
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}\nPidFile none\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nPrintMotd no\n"
            "StrictModes no\n"  # the lab lies under /tmp, which is writable by all: sshd would refuse the keys
            f"SetEnv RAY_TMPDIR={node.ray_tmp} RAY_USAGE_STATS_ENABLED=0 {MARK}={self.mark}\n")

    @staticmethod
    def _home_line(line: str, home: Path) -> str:
        fields = line.split(":")
        if len(fields) == 7 and fields[0] == "root":
            fields[5] = str(home)
        return ":".join(fields)

    def _node_script(self, node: Node, hosts: Path) -> str:
        directory = node.home.parent
        return (f"mount --bind {directory / 'passwd'} /etc/passwd && mount --bind {hosts} /etc/hosts && "
                f"hostname {node.hostname} && exec {SSHD} -D -e -f {directory / 'sshd_config'}")

    def _start(self, node: Node, command: list[str]) -> None:
        log = open(node.home.parent / "sshd.log", "w")
        node.starter = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

        def sshd() -> psutil.Process | None:
            if node.starter.poll() is not None:
                raise RuntimeError(f"{node.name}: {' '.join(command[:6])} ... exited: "
                                   f"{(node.home.parent / 'sshd.log').read_text().strip()[-500:]}")
            children = [p for p in psutil.Process(node.starter.pid).children(recursive=True) if p.name() == "sshd"]
            return children[0] if children else None

        node.sshd = poll(sshd, 20, 0.1)
        if node.sshd is None or not poll(lambda: (node.address, 22) in self.listening(), 20, 0.1):
            raise RuntimeError(f"{node.name}: sshd did not listen on {node.address}:22 within 20 s: "
                               f"{(node.home.parent / 'sshd.log').read_text().strip()[-500:]}")

    def enter(self) -> list[str]:
        """The prefix that runs a command in the lab's network namespace (from this machine's others)."""
        return ["nsenter", f"--net=/proc/{self.head.sshd.pid}/ns/net", "--"]

    def listening(self) -> set[tuple[str, int]]:
        """``{(address, port)}`` of every TCP socket listening in the lab's network namespace."""
        found = set()
        pid = (self.head.sshd or psutil.Process(self.head.starter.pid)).pid
        for name in ("tcp", "tcp6"):
            try:
                lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                if state == "0A":  # LISTEN
                    address, port = local.split(":")
                    found.add((_address(address), int(port, 16)))
        return found

    def interfaces(self) -> set[str]:
        lines = Path(f"/proc/{self.head.sshd.pid}/net/dev").read_text().splitlines()[2:]
        return {line.split(":")[0].strip() for line in lines}

    def routes(self) -> list[str]:
        """The IPv4 main routing table's entries (loopback routes live in the local table, not here)."""
        return Path(f"/proc/{self.head.sshd.pid}/net/route").read_text().splitlines()[1:]

    def stop(self) -> list[str]:
        """End both sshd's by process id (and with them every process left in their PID namespaces); the
        processes still in the lab's network namespace 30 s later, described (none: the lab is gone)."""
        for node in reversed(self.nodes):
            if node.sshd is not None and node.sshd.is_running():
                node.sshd.terminate()
            if node.starter is not None:
                try:
                    node.starter.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.starter.kill()
                    node.starter.wait()
        for node in self.nodes:
            shutil.rmtree(node.ray_tmp, ignore_errors=True)
        if self.net_namespace is None:
            return []
        gone = poll(lambda: not processes_in(self.net_namespace, "net"), 30)
        return [] if gone else describe(processes_in(self.net_namespace, "net"))


def _address(hexadecimal: str) -> str:
    """An address from /proc/net/tcp{,6}: 32-bit words in host byte order (little-endian here)."""
    raw = bytes.fromhex(hexadecimal)
    return str(ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))))
