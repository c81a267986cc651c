"""Gate verbs: `gate`, `gate-demo` and `gate-policy`, each a thin call into a gate handler.

`gate` exits 0 on PASS, 1 on FAIL (or an errored gate), 2 on usage errors, 3 when a server is
unreachable (cli/main.py maps ServiceUnavailable).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import msgspec

from cli.batch_commands import ensure_worker
from cli.gate_output import (
    approval_line,
    policy_table,
    progress_line,
    verdict_notes,
    verdict_table,
)
from cli.output import console, err_console, fail
from cli.registry_commands import Values, _publish, platform
from domain.errors import InvalidInput, NotFound
from domain.gates.aggregate import TERMINAL
from domain.gates.commands import GetGatePolicy, RequestGate
from domain.gates.views import GateView
from domain.registry.commands import ApprovePromotion, SetGatePolicy
from events.base import EventMetadata
from events.gates import INCONCLUSIVE, PASS

USAGE = "usage: gate MODEL_NAME CANDIDATE_VERSION BASELINE_VERSION [--dataset ID] [--json]"
DEMO_DATASET = "fashion_mnist_1000"
SWITCHES = ("require_gate", "auto_gate", "auto_promote")
# The non-inferiority thresholds (docs/gates.md).
NUMBERS = {
    "max_accuracy_drop": float,
    "max_latency_increase": float,
    "alpha": float,
    "min_images": int,
}
# An INCONCLUSIVE verdict exits with its own code: not a FAIL, not a pass either.
EXIT_INCONCLUSIVE = 4
# Top-level policy fields set by value (--gate-dataset '' clears the dataset: the reference one).
POLICY_VALUES = {
    "max_gate_age_s": int,
    "gate_dataset": str,
    "min_gate_images": int,
    "force_role": str,
    "approvals_required": int,
    "max_request_age_s": int,
    "on_inconclusive": str,
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The gate verbs' grammar (the original --model_name style flags are kept)."""
    p = sub.add_parser(
        "gate", help="gate CANDIDATE against BASELINE (exit 0 PASS, 1 FAIL, 4 INCONCLUSIVE)"
    )
    for f in ("model_name", "candidate_version", "baseline_version"):
        p.add_argument(f, nargs="?", default=None)
        p.add_argument(f"--{f}", dest=f"{f}_opt", default=None, help=argparse.SUPPRESS)
    _verdict_flags(p)
    p.add_argument("--reason")
    p = sub.add_parser("gate-demo", help="gate the prod version against itself: must PASS")
    p.add_argument("model_name", nargs="?", default="mnist_cnn")
    _verdict_flags(p)
    p = sub.add_parser("gate-policy", help="show or set a model's gate policy")
    p.add_argument("model_name", nargs="?")
    for name in SWITCHES:
        p.add_argument(f"--{name.replace('_', '-')}", action=argparse.BooleanOptionalAction)
    for name, kind in {**NUMBERS, **POLICY_VALUES}.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, metavar=kind.__name__.upper())
    p.add_argument("--reason")
    p = sub.add_parser("approve", help="approve a pending promotion request (four eyes)")
    p.add_argument("model_name", nargs="?")
    p.add_argument("model_version", nargs="?")
    p.add_argument("--reason")


def _verdict_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", "--dataset_id", dest="dataset", metavar="ID")
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")


def _pick(args: argparse.Namespace, name: str) -> str | None:
    return getattr(args, f"{name}_opt", None) or getattr(args, name, None)


async def follow_gate(p, gate_id: str, quiet: bool, timeout_s: float = 3600) -> GateView:
    """A progress line until the gate has a verdict or an error (starting a worker if none runs)."""
    async with ensure_worker(p, quiet=quiet):
        return await watch_gate(p, gate_id, quiet, timeout_s)


async def watch_gate(p, gate_id: str, quiet: bool, timeout_s: float = 3600) -> GateView:
    """A progress line (on stderr when ``quiet``) until the gate has a verdict or an error."""
    out = err_console if quiet else console
    last, deadline = "", time.monotonic() + timeout_s
    with out.status("waiting for the gate-evaluation group") as status:
        while True:
            view = await p.gate_queries.get(gate_id)
            if view.status in TERMINAL:
                return view
            jobs = {}
            for job_id in {view.candidate_job_id, view.baseline_job_id} - {None}:
                try:
                    jobs[job_id] = await p.job_queries.get(job_id)
                except NotFound:  # submitted by the group in a moment
                    jobs[job_id] = None
            line = progress_line(view, jobs)
            status.update(line)
            if line != last and not out.is_terminal:
                out.print(line, highlight=False)
            last = line
            if time.monotonic() > deadline:
                raise InvalidInput(f"gate {gate_id} is still {view.status} after {timeout_s}s")
            await asyncio.sleep(0.5)


def show(view: GateView, as_json: bool) -> int:
    """Print the verdict (table or JSON); the exit code: 0 PASS, 1 FAIL or errored, 4 INCONCLUSIVE."""
    if as_json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(view)).decode() + "\n")
    else:
        console.print(verdict_table(view))
        for note in verdict_notes(view):
            console.print(note, highlight=False)
    if view.verdict == PASS:
        return 0
    if view.verdict == INCONCLUSIVE:
        return EXIT_INCONCLUSIVE
    if view.error:
        return fail(f"gate {view.gate_id} errored: {view.error}")
    return 1


async def _run(p, meta: EventMetadata, name: str, cand: str, base: str, args) -> int:
    try:
        request = RequestGate(
            model_name=name,
            candidate_version=cand,
            baseline_version=base,
            dataset_id=args.dataset,
            reason=getattr(args, "reason", None),
            metadata=meta,
        )
        gate = await p.bus.handle(request)
    except (InvalidInput, NotFound) as exc:
        return fail(str(exc), 2)
    await _publish(p)
    if gate.warning:
        err_console.print(f"warning: {gate.warning}", highlight=False)
    if not args.json:
        console.print(
            f"gate {gate.gate_id}: {name} {cand} vs {base} on {gate.dataset_id}", highlight=False
        )
    return show(await follow_gate(p, gate.gate_id, quiet=args.json), args.json)


async def gate_cmd(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """gate NAME CANDIDATE BASELINE [--dataset ID] [--json]."""
    name, cand, base = (
        _pick(args, f) for f in ("model_name", "candidate_version", "baseline_version")
    )
    if not (name and cand and base):
        return fail(USAGE, 2)
    async with platform() as p:
        return await _run(p, meta, name, cand, base, args)


async def gate_demo(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """The prod version against itself: it must PASS with delta 0 and p-value 1."""
    name = args.model_name
    async with platform() as p:
        try:
            prod = await p.queries.require_prod(name)
        except NotFound:
            prod = None
        if prod is None:
            return fail(f"model {name!r} has no prod version; run `just demo` first", 2)
        if not args.dataset:
            evaluated = (await p.queries.get_version(name, prod)).evaluations
            args.dataset = next(iter(evaluated), DEMO_DATASET)
        return await _run(p, meta, name, prod, prod, args)


async def gate_policy_cmd(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """gate-policy NAME [--require-gate] [--auto-promote] [--max-accuracy-drop 0.01] ...

    Flags given change those settings of the current policy; with none, print it.
    """
    name = args.model_name
    if not name:
        return fail("usage: gate-policy MODEL_NAME [--require-gate] [--auto-promote] ...", 2)
    async with platform() as p:
        current = await p.bus.handle(GetGatePolicy(model_name=name))
        top = {k: getattr(args, k) for k in ("require_gate", "auto_gate", "auto_promote")}
        top |= {k: getattr(args, k) for k in POLICY_VALUES}
        low = {k: getattr(args, k) for k in NUMBERS}
        top = {k: v for k, v in top.items() if v is not None}
        if top.get("gate_dataset") == "":
            top["gate_dataset"] = None  # back to the model's reference dataset
        low = {k: v for k, v in low.items() if v is not None}
        if not top and not low:
            console.print(policy_table(name, current))
            return 0
        thresholds = msgspec.structs.replace(current.thresholds, **low)
        policy = msgspec.structs.replace(current, thresholds=thresholds, **top)
        cmd = SetGatePolicy(model_name=name, policy=policy, reason=args.reason, metadata=meta)
        result = await p.bus.handle(cmd)
        await _publish(p)
    console.print(policy_table(name, result.state.policy))
    console.print("policy set" if result.changed else "policy unchanged (the same as before)")
    return 0


async def approve_cmd(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """approve NAME VERSION --reason '...': a second key's approval of a promotion request."""
    name, version = args.model_name, args.model_version
    if not (name and version):
        return fail("usage: approve MODEL_NAME MODEL_VERSION --reason '...'", 2)
    cmd = ApprovePromotion(
        model_name=name, model_version=version, reason=args.reason, metadata=meta
    )
    async with platform() as p:
        result = await p.bus.handle(cmd)
        await _publish(p)
    console.print(approval_line(result), highlight=False)
    return 0


COMMANDS = {
    "gate": gate_cmd,
    "gate-demo": gate_demo,
    "gate-policy": gate_policy_cmd,
    "approve": approve_cmd,
}
