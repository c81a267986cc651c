"""A lossy, slow link in user space: ``tc netem``'s loss and delay, for kernels without netem.

``python -m bench.chaos.lossy --loss 0.3 --delay-ms 100 worker1 worker2`` reroutes each named
host's packets to and from the data host through a pair of TUN devices that this process
joins. As ``tc qdisc add dev eth0 root netem loss 30% delay 100ms`` on the host would, each
packet the host sends is dropped with probability ``loss`` or else delivered ``delay`` later;
with ``--both-ways`` its replies suffer the same. Stopping the process (SIGTERM) removes the
devices and with them the detour.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import random
import signal
import struct
import sys

from bench.chaos.net import HOSTS, REDIS_ADDRESS, SUBNET, Network, ip

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
INSIDE = "chxtun"
TABLE = 230  # + the host's number: the routing table of its detour


def open_tun(name: str) -> int:
    """A non-blocking TUN device named ``name`` in this namespace; gone when the fd closes."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def data_addresses() -> list[str]:
    """Where PostgreSQL and Redis listen."""
    return [f"{SUBNET}.{HOSTS['data']}", REDIS_ADDRESS]


def detour(net: Network, name: str, addresses: list[str]) -> tuple[int, int]:
    """Route host ``name``'s traffic with ``addresses`` (on the data host) through two TUN
    devices; their fds. Policy rules pick only that traffic, both ways."""
    host, data = net[name], net["data"]
    table = str(TABLE + HOSTS[name])
    outer_name, inner_tmp = f"chxl{name}"[:15], f"chxi{name}"[:15]
    outer, inner = open_tun(outer_name), open_tun(inner_tmp)
    ip("link", "set", inner_tmp, "netns", host.netns)
    ip("-n", host.netns, "link", "set", inner_tmp, "name", INSIDE)
    ip("-n", host.netns, "link", "set", INSIDE, "up")
    ip("link", "set", outer_name, "up")
    ip("route", "add", f"{host.address}/32", "dev", outer_name, "table", table)
    via = ["via", f"{SUBNET}.1", "dev", "eth0", "onlink", "table", table]
    ip("-n", data.netns, "route", "add", f"{host.address}/32", *via)
    for address in addresses:
        ip("-n", host.netns, "route", "add", f"{address}/32", "dev", INSIDE, "src", host.address)
        for netns in ([], ["-n", data.netns]):
            rule = ["rule", "add", "from", f"{address}/32", "to", f"{host.address}/32"]
            ip(*netns, *rule, "lookup", table)
    return outer, inner


def undo_detour(net: Network, name: str) -> None:
    """Remove the policy rules (the routes went with the devices and their tables)."""
    for netns in ([], ["-n", net["data"].netns]):
        rule = [*netns, "rule", "del", "lookup", str(TABLE + HOSTS[name])]
        while ip(*rule, check=False).returncode == 0:
            pass


def forward(src: int, dst: int, loss: float, delay_s: float) -> None:
    """Move packets from ``src`` to ``dst``: drop some, delay the rest."""
    loop = asyncio.get_running_loop()

    def deliver(packet: bytes) -> None:
        # A device that is down (a partition) loses the packet, as a wire would.
        with contextlib.suppress(OSError):
            os.write(dst, packet)

    def on_readable() -> None:
        while True:
            try:
                packet = os.read(src, 65536)
            except BlockingIOError:
                return
            if random.random() < loss:
                continue
            if delay_s:
                loop.call_later(delay_s, deliver, packet)
            else:
                deliver(packet)

    loop.add_reader(src, on_readable)


async def serve(
    names: list[str], loss: float, delay_s: float, both_ways: bool, addresses: list[str]
) -> None:
    """Build the detours, say ``ready``, and forward until SIGTERM or SIGINT."""
    net = Network()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for name in names:
            outer, inner = detour(net, name, addresses)
            forward(inner, outer, loss, delay_s)
            forward(outer, inner, *((loss, delay_s) if both_ways else (0.0, 0.0)))
        print("ready", flush=True)
        await stop.wait()
    finally:
        for name in names:
            undo_detour(net, name)


def main(argv: list[str] | None = None) -> int:
    """Parse the hosts, loss and delay; forward until stopped."""
    parser = argparse.ArgumentParser(prog="python -m bench.chaos.lossy")
    parser.add_argument("hosts", nargs="+", choices=sorted(set(HOSTS) - {"data"}))
    parser.add_argument("--loss", type=float, default=0.3, help="drop probability per packet")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="delay per packet")
    parser.add_argument("--both-ways", action="store_true", help="the replies too")
    parser.add_argument("--only-redis", action="store_true", help="Redis's address, not PostgreSQL")
    args = parser.parse_args(argv)
    try:
        addresses = [REDIS_ADDRESS] if args.only_redis else data_addresses()
        delay = args.delay_ms / 1000
        asyncio.run(serve(args.hosts, args.loss, delay, args.both_ways, addresses))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
