"""The witness process (`just witness URL --key FILE --state DIR`) and `just witness-key NAME FILE`.

It talks to the platform only over HTTP: it polls the latest checkpoint, checks the log's
signature and the consistency proof from the last checkpoint it cosigned
(domain/audit/witness.py decides), and only then posts its cosignature. Its state is one JSON
file in its own folder; it needs no database, no Redis and none of the platform's keys.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import httpx
import structlog

from cli.output import fail
from domain.audit import witness as w
from domain.audit.note import COSIGNATURE_V1, NoteError, Signer, cosign
from events.base import EventMetadata
from observability.logging import configure_logging

REFUSED, UNREACHABLE, SETUP = 4, 1, 2  # exit codes of --once (and of a setup problem)
STATE_FILE = "state.json"
log = structlog.get_logger("witness")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The witness verbs' grammar."""
    p = sub.add_parser("witness", help="cosign the log's checkpoints while they stay consistent")
    p.add_argument("url", metavar="URL", help="the platform's API, e.g. http://127.0.0.1:8000")
    p.add_argument("--key", required=True, metavar="FILE", help="from `just witness-key`")
    p.add_argument("--state", required=True, metavar="DIR", help="the witness's own folder")
    p.add_argument("--log-key", metavar="FILE", help="the log's public key (`just audit-key`)")
    p.add_argument("--api-key", metavar="KEY", help="sent as X-API-Key (or WITNESS_API_KEY)")
    p.add_argument(
        "--interval", type=float, default=30.0, metavar="S", help="seconds between polls"
    )
    p.add_argument("--once", action="store_true", help="poll once; exit 4 on a refusal")
    p = sub.add_parser("witness-key", help="make a witness key: FILE gets the private key")
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", metavar="FILE")


class HttpProblem(Exception):
    """The API could not be reached or answered an error (exit 1)."""


async def witness_key(args: argparse.Namespace, values: object, meta: EventMetadata) -> int:
    """`just witness-key NAME FILE`."""
    return write_key(args.name, args.file)


def write_key(name: str, file: str) -> int:
    """Write a new cosignature/v1 private key (mode 600) and print its public key line."""
    try:
        signer = Signer.generate(name, COSIGNATURE_V1)
    except NoteError as exc:
        return fail(str(exc), SETUP)
    path = Path(file).expanduser()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return fail(f"{path} exists; a witness key is never overwritten (pick another FILE)", SETUP)
    except OSError as exc:
        return fail(f"cannot create {path}: {exc.strerror}", SETUP)
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey() + "\n")
    print(signer.verifier().vkey())
    print(
        f"# private key in {path}; add the line above to the platform's WITNESS_KEYS",
        file=sys.stderr,
    )
    return 0


def _read_line(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise w.WitnessError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_signer(path: str) -> Signer:
    """The witness's private key from FILE (a cosignature/v1 key)."""
    try:
        signer = Signer.parse(_read_line(path, "the witness key"))
    except NoteError as exc:
        raise w.WitnessError(f"{path}: {exc}") from None
    if signer.alg != COSIGNATURE_V1:
        raise w.WitnessError(f"{path} is not a witness key; make one with `just witness-key`")
    return signer


class StateDir:
    """DIR/state.json, written atomically, and a lock so one witness at a time uses DIR."""

    def __init__(self, path: str) -> None:
        self.dir = Path(path).expanduser()
        if not self.dir.exists():
            self.dir.mkdir(mode=0o700, parents=True)
            self.dir.chmod(0o700)  # whatever the umask
        if not self.dir.is_dir():
            raise w.WitnessError(f"--state {self.dir} is not a folder")
        self._lock = open(self.dir / ".lock", "a")  # noqa: SIM115 (held for the process's life)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise w.WitnessError(f"another witness is running on {self.dir}") from None

    def load(self) -> w.WitnessState | None:
        """The last cosigned checkpoint, None before the first."""
        path = self.dir / STATE_FILE
        if not path.exists():
            return None
        try:
            return w.WitnessState.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise w.WitnessError(f"{path}: {exc}") from None

    def save(self, state: w.WitnessState) -> None:
        """Replace state.json in one step (a crash leaves the old or the new file)."""
        tmp = self.dir / f".{STATE_FILE}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(state.to_dict(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / STATE_FILE)


class Witness:
    """One witness: its key, its state folder, and the log it watches."""

    def __init__(self, args: argparse.Namespace) -> None:
        if not args.url.startswith(("http://", "https://")):
            raise w.WitnessError(f"URL must start with http:// or https://, not {args.url!r}")
        self.url = args.url.rstrip("/")
        self.signer = load_signer(args.key)
        self.given_key = _read_line(args.log_key, "the log key") if args.log_key else None
        self.state_dir = StateDir(args.state)
        api_key = args.api_key or os.environ.get("WITNESS_API_KEY")
        headers = {"X-API-Key": api_key} if api_key else {}
        self.client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=15)

    async def _call(self, method: str, path: str, **kw) -> httpx.Response:
        """The response, or HttpProblem (unreachable, or an error other than 404 and 409)."""
        try:
            r = await self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise HttpProblem(
                f"cannot reach {self.url}{path}: {exc or type(exc).__name__}"
            ) from None
        if r.status_code >= 400 and r.status_code not in (404, 409):
            detail = r.text.strip().replace("\n", " ")[:200]
            raise HttpProblem(f"{method} {self.url}{path} answered {r.status_code}: {detail}")
        return r

    async def _proof(self, old: int, new: int) -> list[bytes] | w.Refuse:
        r = await self._call("GET", "/log/proof/consistency", params={"from": old, "to": new})
        if r.status_code >= 400:
            raise HttpProblem(f"{self.url}/log/proof/consistency answered {r.status_code}")
        body = r.json()
        try:
            if (body["from"], body["to"]) != (old, new):
                raise ValueError(f"it is from {body['from']} to {body['to']}")
            return [base64.b64decode(x, validate=True) for x in body["proof"]]
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            return w.Refuse(
                w.REWRITTEN, f"the log's consistency proof {old}..{new} is malformed: {exc}"
            )

    async def _post(self, body: str, size: int) -> str:
        line = cosign(body, self.signer, int(time.time())).text()
        r = await self._call("POST", "/log/cosignatures", json={"size": size, "line": line})
        if r.status_code == 404:
            raise HttpProblem(f"{self.url} has no checkpoint of size {size} to cosign")
        # 409: this key already cosigned this size (a run that stopped before saving its state).
        return "already_cosigned" if r.status_code == 409 else "cosigned"

    async def poll(self) -> int:
        """Fetch, check, cosign: 0 when cosigned or nothing to do, REFUSED on a refusal."""
        r = await self._call("GET", "/log/checkpoint")
        if r.status_code == 404:
            log.info("witness_waiting", url=self.url, detail="the log has no checkpoint yet")
            return 0
        published = r.json()
        state = self.state_dir.load()
        choice = w.choose_log_key(
            state.log_key if state else None, self.given_key, published.get("public_key")
        )
        if isinstance(choice, w.Refuse):
            return self._refuse(choice, state, None)
        read = w.read_note(published.get("note") or "", choice.key)
        if isinstance(read, w.Refuse):
            return self._refuse(read, state, None)
        checkpoint, body = read
        span = w.proof_needed(state, checkpoint)
        proof = await self._proof(*span) if span else None
        if isinstance(proof, w.Refuse):
            return self._refuse(proof, state, checkpoint)
        decision = w.decide(state, checkpoint, proof)
        if isinstance(decision, w.Refuse):
            return self._refuse(decision, state, checkpoint)
        key_line = choice.key.vkey() if choice.pin else None
        if choice.trusted_on_first_use:
            log.warning(
                "witness_log_key_pinned",
                key=key_line,
                detail="no --log-key: trusting the key the log published on first use",
            )
        if isinstance(decision, w.Unchanged):
            if self.signer.name not in published.get("cosigned_by", []):
                await self._post(body, checkpoint.size)  # the log lost it: post it again
                log.info("witness_recosigned", size=checkpoint.size)
            if key_line:
                self.state_dir.save(w.WitnessState(state.origin, state.size, state.root, key_line))
            log.info("witness_unchanged", size=checkpoint.size)
            return 0
        outcome = await self._post(body, checkpoint.size)
        self.state_dir.save(w.after(state, decision, key_line))
        log.info(
            f"witness_{outcome}",
            origin=checkpoint.origin,
            size=checkpoint.size,
            root=base64.b64encode(checkpoint.root).decode(),
            previous_size=state.size if state else None,
            first_contact=decision.first_contact,
        )
        return 0

    def _refuse(self, refusal: w.Refuse, state: w.WitnessState | None, cp) -> int:
        log.error(
            "witness_refused",
            kind=refusal.kind,
            reason=refusal.reason,
            url=self.url,
            cosigned_size=state.size if state else None,
            cosigned_root=base64.b64encode(state.root).decode() if state else None,
            size=cp.size if cp else None,
            root=base64.b64encode(cp.root).decode() if cp else None,
        )
        return REFUSED


async def run(args: argparse.Namespace, values: object, meta: EventMetadata) -> int:
    """`just witness`: poll once (--once) or forever; the state never moves past a refusal."""
    configure_logging(os.environ.get("LOG_LEVEL") or "info")
    if args.interval <= 0:
        return fail(f"--interval must be > 0 seconds, not {args.interval}", SETUP)
    try:
        witness = Witness(args)
    except w.WitnessError as exc:
        return fail(str(exc), SETUP)
    async with witness.client:
        while True:
            try:
                code = await witness.poll()
            except w.WitnessError as exc:
                return fail(str(exc), SETUP)
            except HttpProblem as exc:
                if args.once:
                    return fail(str(exc), UNREACHABLE)
                log.error("witness_unreachable", url=witness.url, detail=str(exc))
                code = UNREACHABLE
            if args.once:
                if code == REFUSED:
                    return fail(f"refused the checkpoint of {witness.url} (see the log line)", code)
                return code
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(args.interval)


COMMANDS = {"witness": run, "witness-key": witness_key}
