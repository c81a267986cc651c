"""The hosts: network namespaces joined by veth pairs to a bridge in the root namespace.

Every name starts with ``chaos-`` (namespaces) or ``chx`` (links), so a run can remove what a
crashed run left behind without touching anything else on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PREFIX = "chaos-"
BRIDGE = "chxbr0"
SUBNET = "10.231.0"
# The data host has two addresses, PostgreSQL on one and Redis on the other, so that a route
# can cut a host off from Redis alone (this kernel has no packet filter to match ports).
HOSTS = {"data": 2, "api": 3, "worker1": 4, "worker2": 5}
REDIS_ADDRESS = f"{SUBNET}.6"


class ChaosUnavailable(RuntimeError):
    """The machine cannot build the cluster (not root, no iproute2, no namespaces)."""


@dataclass(frozen=True)
class Host:
    """One namespace: its name, address and the root side of its link."""

    name: str
    address: str

    @property
    def netns(self) -> str:
        """The namespace's name."""
        return PREFIX + self.name

    @property
    def link(self) -> str:
        """The root namespace's end of the host's veth pair (what a partition takes down)."""
        return "chx" + self.name

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ip ARGS``; raise with its message when ``check`` and it fails."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def check_capable() -> None:
    """Raise ChaosUnavailable with the reason when this process cannot build namespaces."""
    if os.geteuid() != 0:
        raise ChaosUnavailable(
            "chaos needs root: it builds network namespaces, veth pairs and a bridge "
            "(run `sudo just chaos`)"
        )
    if shutil.which("ip") is None:
        raise ChaosUnavailable("chaos needs iproute2's `ip` (apt-get install iproute2)")
    probe = ip("netns", "list", check=False)
    if probe.returncode != 0:
        raise ChaosUnavailable(f"`ip netns` is unavailable here: {probe.stderr.strip()}")
    if not Path("/dev/net/tun").exists():
        raise ChaosUnavailable("chaos needs /dev/net/tun for its lossy links")


def leftovers() -> list[str]:
    """Namespaces of an earlier run still present."""
    out = ip("netns", "list", check=False).stdout.split("\n")
    return [line.split()[0] for line in out if line.startswith(PREFIX)]


def teardown() -> None:
    """Remove every namespace, link and bridge a run (this one or a crashed one) made."""
    for netns in leftovers():
        for pid in ip("netns", "pids", netns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        ip("netns", "del", netns, check=False)
    links = ip("-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith("chx"):
            ip("link", "del", name, check=False)
    # The lossy links' policy rules in the root namespace (tables 230 + a host's number).
    for table in range(230, 230 + 10):
        while ip("rule", "del", "lookup", str(table), check=False).returncode == 0:
            pass


class Network:
    """The bridge and the hosts on it."""

    def __init__(self) -> None:
        self.hosts = {name: Host(name, f"{SUBNET}.{n}") for name, n in HOSTS.items()}
        self._forwarding: str | None = None

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def build(self) -> None:
        """Create the bridge (root side at .1) and one namespace per host on it."""
        teardown()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            ip("netns", "add", host.netns)
            ip(
                "link",
                "add",
                host.link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.netns,
            )
            ip("link", "set", host.link, "master", BRIDGE, "up")
            ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.netns, "link", "set", "eth0", "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
        ip("-n", self["data"].netns, "addr", "add", f"{REDIS_ADDRESS}/24", "dev", "eth0")
        # The lossy links route through the root namespace (bench.chaos.lossy).
        path = Path("/proc/sys/net/ipv4/ip_forward")
        self._forwarding = path.read_text().strip()
        path.write_text("1\n")

    def teardown(self) -> None:
        """Remove everything ``build`` made and restore IP forwarding."""
        teardown()
        if self._forwarding is not None:
            Path("/proc/sys/net/ipv4/ip_forward").write_text(self._forwarding + "\n")
            self._forwarding = None

    def partition(self, name: str) -> None:
        """Cut a host off from every other (its link down)."""
        ip("link", "set", self[name].link, "down")

    def heal(self, name: str) -> None:
        """Bring a partitioned host's link back."""
        ip("link", "set", self[name].link, "master", BRIDGE, "up")
