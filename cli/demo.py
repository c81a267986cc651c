"""`just demo`: the main job end to end, on embedded servers unless the URLs are set."""

from __future__ import annotations

import argparse
import base64
import io

import httpx
from rich.rule import Rule
from rich.table import Table

from cli.batch_commands import ensure_worker
from cli.ml_commands import train_and_register
from cli.output import console, models_table, print_history
from cli.processes import running_api
from cli.registry_commands import Values, _publish, platform
from domain.registry.commands import GetModel, PromoteModelVersion, RollbackModel, SetGatePolicy
from domain.registry.reference import accuracy_label
from events.base import EventMetadata
from events.gates import GatePolicy

ARCH, DATASET = "mnist_cnn", "fashion_mnist"
VERSIONS = (("v1.0.0", 1, "baseline: one epoch"), ("v2.0.0", None, "full training run"))


async def run(args: argparse.Namespace, values: Values, meta: EventMetadata) -> int:
    """Train two versions, register, promote, roll back, serve, evaluate, gate v2, promote it."""
    name = args.model_name
    async with platform() as p:
        console.print(Rule(f"1. train and register two versions of {name} ({ARCH} on {DATASET})"))
        state = await p.bus.handle(GetModel(model_name=name))
        for version, epochs, why in VERSIONS:
            if version in state.versions:
                console.print(
                    f"reusing {name} {version} (test accuracy {_trained(state, version)})"
                )
                continue
            result = await train_and_register(
                p,
                meta,
                model_name=name,
                arch=ARCH,
                dataset=DATASET,
                epochs=epochs,
                version=version,
                reason=why,
            )
            m = result.state.versions[version].metadata
            console.print(
                f"registered {name} {version}: test accuracy {_trained(result.state, version)}, "
                f"trained in {m.training['wall_seconds']}s"
            )

        console.print(Rule("2. promote v1.0.0, promote v2.0.0, roll back"))
        # Gates come later, by hand (step 6): no required or automatic gate before then.
        hands_off = GatePolicy(auto_gate=False, require_gate=False)
        why = "demo: gates by hand in step 6"
        await p.bus.handle(
            SetGatePolicy(model_name=name, policy=hands_off, reason=why, metadata=meta)
        )
        for version, reason in (("v1.0.0", "demo: baseline to prod"), ("v2.0.0", "demo: better")):
            cmd = PromoteModelVersion(
                model_name=name, model_version=version, reason=reason, metadata=meta
            )
            await p.bus.handle(cmd)
            console.print(f"promoted {version}")
        why = "demo: show a rollback in the audit trail"
        result = await p.bus.handle(RollbackModel(model_name=name, reason=why, metadata=meta))
        ev = result.recorded[0].event
        console.print(f"rolled back: {ev.from_version} -> {ev.to_version}")  # type: ignore[attr-defined]
        await _publish(p)

        console.print(Rule("3. registry and audit trail"))
        console.print(models_table(await p.queries.list_versions(name), f"versions of {name}"))
        print_history(await p.queries.history(name), f"history of {name}")
        prod = await p.queries.prod_version(name)
        console.print(f"current prod: [bold]{prod}[/]")

        console.print(Rule("4. serve predictions from the prod version over HTTP"))
        await serve_predictions(p, name)

        console.print(
            Rule(f"5. evaluate both versions on {DATASET}_10000 through the consumer groups")
        )
        async with ensure_worker(p):
            await evaluate_side_by_side(p, meta, name)
            console.print(Rule("6. require a gate, gate v2.0.0 against prod, promote it on PASS"))
            await gate_and_promote(p, meta, name)
    return 0


def _trained(state, version: str) -> str:
    """The registration's test accuracy, with the dataset and image count it was measured on."""
    m = state.versions[version].metadata
    acc = m.test_metrics.get("accuracy", float("nan"))
    return accuracy_label(acc, m.training.get("eval_dataset"), m.training.get("eval_samples"))


async def gate_and_promote(p, meta: EventMetadata, name: str) -> None:
    """Require gates, run one through the gate-evaluation group, promote the candidate on PASS."""
    from cli.gate_commands import watch_gate
    from cli.gate_output import policy_table, verdict_notes, verdict_table
    from domain.gates.commands import RequestGate

    before = len(await p.queries.history(name))
    policy = GatePolicy(require_gate=True, auto_gate=False)
    why = "demo: promotions need a PASS gate"
    await p.bus.handle(SetGatePolicy(model_name=name, policy=policy, reason=why, metadata=meta))
    console.print(policy_table(name, policy))
    prod = await p.queries.prod_version(name)
    candidate = VERSIONS[-1][0]
    request = RequestGate(
        model_name=name,
        candidate_version=candidate,
        baseline_version=prod,
        dataset_id=f"{DATASET}_10000",
        reason="demo: is v2.0.0 fit for prod?",
        metadata=meta,
    )
    gate = await p.bus.handle(request)
    await _publish(p)
    console.print(f"gate {gate.gate_id}: {candidate} vs prod {prod} (recorded evaluations reused)")
    view = await watch_gate(p, gate.gate_id, quiet=False)
    console.print(verdict_table(view))
    for note in verdict_notes(view):
        console.print(note, highlight=False)
    if view.verdict != "PASS":
        console.print(
            f"[red]{candidate} stays in staging: gate {view.verdict}[/] {view.error or ''}"
        )
        return
    cmd = PromoteModelVersion(
        model_name=name, model_version=candidate, reason="demo: gate passed", metadata=meta
    )
    result = await p.bus.handle(cmd)
    await _publish(p)
    event = result.recorded[0].event if result.recorded else None
    cleared = f", cleared by gate {event.gate_id}" if event is not None else " (already prod)"
    console.print(f"promoted {candidate} to prod{cleared}")  # type: ignore[union-attr]
    trail = (await p.queries.history(name))[before:]
    print_history(trail, f"history of {name}: the policy, the gate, the promotion")


async def evaluate_side_by_side(p, meta: EventMetadata, name: str) -> None:
    """Submit one batch job per version, let the workers run them, compare the metrics."""
    from cli.batch_commands import follow
    from domain.jobs.commands import SubmitBatchJob

    jobs = []
    for version, _, _ in VERSIONS:
        submit = SubmitBatchJob(
            model_name=name,
            dataset_id=f"{DATASET}_10000",
            batch_size=256,
            model_version=version,
            limited=False,  # the demo's two evaluations, as the gates' own: no key's quota
            metadata=meta,
        )
        job = await p.bus.handle(submit)
        jobs.append(job)
    await _publish(p)
    done = [await follow(p, j.job_id, f"{name} {j.model_version}") for j in jobs]
    table = Table(
        title=f"{name} on {DATASET}_10000, evaluated by the batch-inference and metric-aggregation groups"
    )
    table.add_column("metric")
    for job in done:
        table.add_column(f"{job.model_version} ({job.status})", justify="right")
    keys = (
        "accuracy",
        "macro_f1",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "sample_latency_p95_ms",
        "throughput_images_per_s",
        "wall_seconds",
    )
    for key in keys:
        cells = []
        for job in done:
            value = (job.result_metrics or {}).get(key)
            cells.append(f"{value:,.4f}" if isinstance(value, float) else str(value))
        table.add_row(key, *cells)
    console.print(table)


async def serve_predictions(p, name: str, count: int = 8) -> None:
    """Start the API, classify a few test images with the prod model, print them with labels."""
    from PIL import Image

    from ml.datasets import load_dataset

    test = load_dataset(
        f"{DATASET}_{count}",
        data_dir=p.settings.files.data_dir,
        cache_dir=p.settings.files.cache_dir,
    )
    async with running_api() as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        table = Table(title=f"{name} (prod) on {DATASET} test images via POST /predict")
        for col in ("#", "true label", "prediction", "version", "latency ms", "ok"):
            table.add_column(col)
        correct = 0
        for i in range(count):
            buf = io.BytesIO()
            Image.fromarray(test.images[i].numpy(), mode="L").save(buf, format="PNG")
            body = {"model_name": name, "image_b64": base64.b64encode(buf.getvalue()).decode()}
            r = await client.post("/predict", json=body)
            r.raise_for_status()
            out = r.json()
            truth = test.class_names[int(test.labels[i])]
            guess = test.class_names[out["prediction"]]
            correct += truth == guess
            table.add_row(
                str(i),
                truth,
                guess,
                out["model_version"],
                f"{out['latency_ms']:.2f}",
                "[green]yes[/]" if truth == guess else "[red]no[/]",
            )
        console.print(table)
        console.print(f"{correct}/{count} correct")
