"""`just bench-shadow`'s canaries, driven like a user: `just canary NAME VERSION --steps 20,50,100`
runs as a subprocess (it follows the canary and exits 0 when promoted, 1 when aborted) while
clients send /predict with Fashion-MNIST test images and POST /feedback with their true labels.

Every request is captured (a capture policy at fraction 1, set as a user would), so feedback is
accepted for prod's requests too: "labelled" counts every request whose feedback was accepted,
on either side of the split. Feedback goes in lists of up to 1,000 once the traffic recorder has
stored the requests (a 404 means not yet: the list is sent again a moment later).
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.client import Connection, HttpError
from bench.common import ROOT, child_env
from bench.load_requests import png_b64
from bench.shadow_load import delta, scrape_counters
from bench.shadow_models import cli

STEPS = "20,50,100"
FEEDBACK_AFTER_S = 0.5  # the capture writer and the recorder need a moment
GIVE_UP_S = 120.0  # the recorder may lag the canary's traffic by this much on 2 cores
MAX_FEEDBACK = 1000


@dataclass
class Drive:
    """What one canary's traffic did so far."""

    sent: int = 0
    to_candidate: int = 0
    errors: int = 0
    labelled: int = 0  # feedback accepted (new labels)
    refused: int = 0  # requests whose feedback was given up (never captured)
    statuses: dict = field(default_factory=dict)  # POST /feedback answers by status
    last_error: str = ""
    pending: collections.deque = field(default_factory=collections.deque)
    steps: list[dict] = field(default_factory=list)


class Traffic:
    """The test images as ready request bodies, with their labels, in a seeded random order."""

    def __init__(self, url: str, model_name: str, images: np.ndarray, labels: np.ndarray) -> None:
        order = np.random.default_rng(24).permutation(len(images))
        self.labels = [int(labels[i]) for i in order]
        self.bodies = [
            json.dumps({"model_name": model_name, "image_b64": png_b64(images[i])}).encode()
            for i in order
        ]
        self.host = url.split("//", 1)[1]
        self.next = 0

    def request(self, request_id: str) -> tuple[bytes, int]:
        """The next image's /predict request (with our X-Request-Id) and its true label."""
        i = self.next % len(self.bodies)
        self.next += 1
        body = self.bodies[i]
        head = (
            f"POST /predict HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"X-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body, self.labels[i]


async def _send(url: str, traffic: Traffic, d: Drive, tag: str, candidate: str, stop) -> None:
    conn = Connection(url)
    try:
        while not stop.is_set():
            rid = f"{tag}-{traffic.next}"
            request, label = traffic.request(rid)
            try:
                status, body = await conn.send(request)
            except (OSError, HttpError, asyncio.IncompleteReadError):
                status, body = 599, b""
            d.sent += 1
            if status != 200:
                d.errors += 1
                continue
            if json.loads(body)["model_version"] == candidate:
                d.to_candidate += 1
            d.pending.append((rid, label, time.monotonic()))
    finally:
        await conn.close()


async def _feed(client: httpx.AsyncClient, d: Drive, tag: str, stop: asyncio.Event) -> None:
    """POST /feedback for the answered requests, oldest first, until stopped and drained.

    A 404 names (up to 20 of) the requests the recorder does not have yet: those wait and go
    again later, the rest of the list goes at once. One still unknown after GIVE_UP_S was never
    captured (its capture was dropped): counted as refused.
    """
    while not (stop.is_set() and not d.pending):
        now = time.monotonic()
        chunk = []
        while d.pending and len(chunk) < MAX_FEEDBACK and now - d.pending[0][2] > FEEDBACK_AFTER_S:
            chunk.append(d.pending.popleft())
        if not chunk:
            await asyncio.sleep(0.2)
            continue
        body = [{"request_id": rid, "label": label} for rid, label, _ in chunk]
        r = await client.post("/feedback", json=body)
        d.statuses[r.status_code] = d.statuses.get(r.status_code, 0) + 1
        if r.status_code != 200:
            d.last_error = f"{r.status_code} {r.text[:300]}"
        if r.status_code == 200:
            d.labelled += r.json()["labelled"]
            continue
        if r.status_code != 404:
            d.refused += len(chunk)
            continue
        named = set(re.findall(rf"{re.escape(tag)}-\d+", r.text))
        late = chunk if " more" in r.text or not named else [x for x in chunk if x[0] in named]
        rest = [x for x in chunk if x not in late] if late is not chunk else []
        d.pending.extendleft(reversed(rest))  # known ones: again at once, without the late
        for x in late:
            if now - x[2] > GIVE_UP_S:
                d.refused += 1
            else:
                d.pending.append(x)  # behind the others: the recorder gets a moment
        if stop.is_set():
            return  # the run is over: what the recorder lacks by now no longer matters
        if late is chunk:
            await asyncio.sleep(0.3)


async def _watch(client, name: str, d: Drive, started: float, stop, limit: dict) -> dict:
    """Poll GET /models/{name}/canary; note each step; return the ended run when it ends."""
    canary_id, step = None, None
    while True:
        view = (await client.get(f"/models/{name}/canary")).json()
        c = view["canary"]
        now = round(time.monotonic() - started, 1)
        if c is not None:
            canary_id = canary_id or c["canary_id"]
            if c["step"] != step:
                step = c["step"]
                d.steps.append(
                    {"share": c["steps"][step], "at_s": now, "sent": d.sent, "labelled": d.labelled}
                )
        ended = next((e for e in view["ended"] if e["run_id"] == canary_id), None)
        if canary_id and c is None and ended is not None:
            stop.set()
            return {**ended, "at_s": now, "sent": d.sent, "labelled": d.labelled}
        if d.labelled >= limit["labelled"] or now >= limit["seconds"]:
            stop.set()
            return {
                "outcome": "UNFINISHED",
                "why": f"bench limit {limit}",
                "at_s": now,
                "sent": d.sent,
                "labelled": d.labelled,
                "figures": None,
            }
        await asyncio.sleep(0.25)


async def run_canary(url: str, name: str, version: str, traffic: Traffic, args, log) -> dict:
    """Start `just canary` on ``version``, drive traffic until it ends; what happened."""
    out = Path(args.scratch) / f"canary-{version}.log"
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "canary",
        name,
        version,
        "--steps",
        STEPS,
        "--reason",
        "bench-shadow",
    ]
    with out.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(COLUMNS="120"), stdout=fh, stderr=fh)  # noqa: ASYNC220
    d = Drive()
    stop = asyncio.Event()
    limit = {"labelled": args.max_labelled, "seconds": args.max_canary_s}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(200):  # until the canary is recorded and the API processes follow it
            if (await client.get(f"/models/{name}/canary")).json()["canary"]:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        before = await scrape_counters(url, args.api_processes)
        started = time.monotonic()
        tasks = [
            asyncio.create_task(_send(url, traffic, d, version, version, stop))
            for _ in range(args.canary_concurrency)
        ]
        feeder = asyncio.create_task(_feed(client, d, version, stop))
        ended = await _watch(client, name, d, started, stop, limit)
        await asyncio.gather(*tasks)
        await feeder
        counters = delta(await scrape_counters(url, args.api_processes), before)
    if ended["outcome"] == "UNFINISHED":
        cli("canary", name, "--abort", "--reason", "bench limit reached", check=False)
    try:
        code = await asyncio.to_thread(proc.wait, 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    figures = ended.get("figures") or {}
    checks = {k["name"]: k for k in figures.get("checks", [])}
    log(
        f"canary {version}: {ended['outcome']} after {ended['at_s']} s, {ended['sent']:,} sent, "
        f"{ended['labelled']:,} with feedback: {ended['why']}"
    )
    return {
        "version": version,
        "outcome": ended["outcome"],
        "why": ended["why"],
        "failing_check": ended["why"].split(":", 1)[0] if ended["outcome"] == "ABORTED" else None,
        "wall_s": ended["at_s"],
        "requests_sent": ended["sent"],
        "labelled": ended["labelled"],
        "to_candidate": d.to_candidate,
        "errors": d.errors,
        "feedback_refused": d.refused,
        "feedback_statuses": {str(k): v for k, v in d.statuses.items()},
        "feedback_last_error": d.last_error,
        "after_end": {"sent": d.sent, "labelled": d.labelled},
        "steps": d.steps,
        "paired_outcomes": figures.get("outcomes"),
        "paired_labelled": figures.get("labelled"),
        "prod_accuracy": figures.get("prod_accuracy"),
        "candidate_accuracy": figures.get("candidate_accuracy"),
        "p95_ratio": figures.get("p95_ratio"),
        "checks": checks,
        "cli_exit_code": code,
        "counters": counters,
    }
