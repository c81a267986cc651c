"""``python -m cli.offline``: verify a trail bundle or a promotion receipt with public keys only.

No database, Redis or network: this module imports the pure verification code and nothing of
the platform's adapters (a test checks the modules it loads). Exit 0 verified, 4 not, 2 usage.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from datetime import datetime
from pathlib import Path

from cli.usage import Parser
from domain.audit.note import COSIGNATURE_V1, ED25519, NoteError, Verifier
from domain.audit.offline.bundle import FormatError, decode_bundle, decode_receipt
from domain.audit.offline.receipt import VerifiedReceipt, verify_receipt
from domain.audit.offline.trail import (
    NotVerified,
    VerifiedTrail,
    history,
    models,
    prod_at,
    verify_trail,
)
from domain.audit.reports import parse_time
from domain.errors import InvalidInput
from events.gates import GateEvaluated

VERIFIED, USAGE, NOT_VERIFIED = 0, 2, 4


class Usage(Exception):
    """A bad argument, file or key file: one line, exit 2."""


def build_parser() -> Parser:
    """The two verbs' grammar."""
    parser = Parser(prog="python -m cli.offline", description=__doc__)
    sub = parser.add_verbs()
    p = sub.add_parser("verify-offline", help="verify a bundle from `just export-trail`")
    p.add_argument("file", metavar="FILE")
    _keys(p)
    p.add_argument("--at", metavar="TIME", action="append", default=[], help="print prod at TIME")
    p.add_argument("--model", metavar="NAME", help="the model whose history to print")
    p = sub.add_parser("verify-receipt", help="verify a receipt from `just receipt`")
    p.add_argument("file", metavar="FILE")
    _keys(p)
    p.add_argument("--artifact", metavar="PATH", help="check this file's sha256 too")
    return parser


def _keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key", metavar="KEYFILE", required=True, help="the log's public key")
    p.add_argument(
        "--witness", metavar="KEYFILE", action="append", default=[], help="a required witness"
    )


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise Usage(f"cannot read {what} {path}: {exc.strerror}") from None


def read_key(path: str, alg: int) -> Verifier:
    """A public key file as `just audit-key` (or a witness) prints it."""
    try:
        key = Verifier.parse(_read(path, "key file").decode(errors="replace"))
    except NoteError as exc:
        raise Usage(f"key file {path}: {exc}") from None
    if key.alg != alg:
        want = "the log's note key" if alg == ED25519 else "a witness (cosignature/v1) key"
        raise Usage(f"key file {path}: {key.name} is not {want}")
    return key


def _ts(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _checkpoint_line(v: VerifiedTrail | VerifiedReceipt, key: Verifier) -> str:
    cp = v.checkpoint
    cosigned = ", ".join(v.cosigners) or "no witness asked (--witness)"
    return f"checkpoint {cp.origin} size {cp.size} signed by {key.name}; cosigned by: {cosigned}"


def verify_offline(args: argparse.Namespace) -> int:
    """Verify a trail bundle; print the model's history and prod at each --at."""
    times = [parse_time(t, "--at") for t in args.at]
    key = read_key(args.key, ED25519)
    witnesses = [read_key(w, COSIGNATURE_V1) for w in args.witness]
    try:
        bundle = decode_bundle(_read(args.file, "bundle"))
    except FormatError as exc:
        raise Usage(f"{args.file}: {exc}") from None
    if args.model and bundle.model and args.model != bundle.model:
        raise Usage(f"{args.file} was exported for model {bundle.model}, not {args.model}")
    v = verify_trail(bundle, key, witnesses)
    kind = "complete from leaf 0" if v.complete else f"selected for model {bundle.model}"
    print(f"verified: {len(v.rows)} entries ({kind})")
    print(_checkpoint_line(v, key))
    model = args.model or bundle.model
    names = [model] if model else sorted(models(v.rows))
    if model:
        _print_history(v, model)
    elif not times:
        for name, count in sorted(models(v.rows).items()):
            print(f"model {name}: {count} events (--model {name} prints its history)")
    for at in times:
        for name in names:
            state = prod_at(v.rows, name, at)
            print(f"prod at {_ts(at)}: {name} {state.prod_version or 'none'}")
    return VERIFIED


def _print_history(v: VerifiedTrail, model: str) -> None:
    entries = history(v.rows, model)
    print(f"history of {model}: {len(entries)} events")
    for e in entries:
        version = e.model_version or "-"
        reason = f"  reason: {e.reason}" if e.reason else ""
        print(
            f"{e.position:>8}  {_ts(e.recorded_at)}  {e.actor:<20} {e.event_type:<26} "
            f"{version:<10}{reason}".rstrip()
        )


def verify_receipt_cmd(args: argparse.Namespace) -> int:
    """Verify a promotion receipt (and the artifact's sha256 with --artifact)."""
    key = read_key(args.key, ED25519)
    witnesses = [read_key(w, COSIGNATURE_V1) for w in args.witness]
    try:
        receipt = decode_receipt(_read(args.file, "receipt"))
    except FormatError as exc:
        raise Usage(f"{args.file}: {exc}") from None
    digest = None
    if args.artifact:
        h = hashlib.sha256()
        try:
            with open(args.artifact, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError as exc:
            raise Usage(f"cannot read artifact {args.artifact}: {exc.strerror}") from None
        digest = h.hexdigest()
    v = verify_receipt(receipt, key, witnesses, digest)
    reg, gate, promo = v.events.registration, v.events.gate, v.events.promotion
    r, p = reg.event, promo.event
    print(f"receipt verified: {r.model_name} {r.model_version} promoted to prod")
    print(_checkpoint_line(v, key))
    meta = r.metadata
    recipe = ", ".join(f"{k}={val}" for k, val in sorted(meta.training.items())) or "none recorded"
    print(
        f"registered  {_ts(reg.recorded_at)} by {reg.metadata.actor} (position {reg.position}): "
        f"sha256 {r.sha256}, architecture {meta.architecture or '-'}, dataset "
        f"{meta.dataset or '-'}, recipe {recipe}"
    )
    if gate is not None and isinstance(gate.event, GateEvaluated):
        g = gate.event
        a = g.accuracy
        print(
            f"gate        {_ts(gate.recorded_at)} (position {gate.position}): gate {g.gate_id} "
            f"{g.verdict}, {g.candidate_version} against {g.baseline_version} on {g.dataset_id} "
            f"({a.images} images: {a.candidate_correct} vs {a.baseline_correct} correct)"
        )
    elif p.canary_id is not None:
        print(f"gate        none: canary {p.canary_id} passed every step on live traffic")
    else:
        print("gate        none: the promotion named no gate and no PASS of it was recorded")
    forced = f", forced: {p.force_reason}" if p.forced else ""
    approved = f", approved by {', '.join(p.approved_by)}" if p.approved_by else ""
    print(
        f"promoted    {_ts(promo.recorded_at)} by {promo.metadata.actor} (position "
        f"{promo.position}): previous prod {p.previous_prod or 'none'}, reason "
        f"{p.reason or '-'}{forced}{approved}"
    )
    if v.artifact_matches:
        print(f"artifact    {args.artifact}: sha256 matches the registration")
    return VERIFIED


def main(argv: list[str] | None = None) -> int:
    """Parse, verify, and map the outcome to 0 (verified), 4 (not) or 2 (usage)."""
    args = build_parser().parse_args(argv)
    run = verify_offline if args.verb == "verify-offline" else verify_receipt_cmd
    try:
        return run(args)
    except (Usage, InvalidInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except NotVerified as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return NOT_VERIFIED


if __name__ == "__main__":
    sys.exit(main())
