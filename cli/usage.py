"""Usage errors that help: the verb's own usage (not every verb's), the closest flag or verb
for a typo, and exit status 2, as for any usage error of argparse."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from domain.suggest import did_you_mean

HELP = "`python -m cli --help` lists them"


class UsageError(Exception):
    """A verb's arguments are incomplete (a missing NAME or VERSION): usage, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors name the closest verb or flag and print the verb's usage only.

    Subparsers are of this class too (argparse gives them their parent's).
    """

    verbs: argparse._SubParsersAction | None = None

    def add_verbs(self, **kwargs: Any) -> argparse._SubParsersAction:
        """The verbs' subparsers: the top usage reads COMMAND, not the 30-odd verbs."""
        self.verbs = self.add_subparsers(dest="verb", required=True, metavar="COMMAND", **kwargs)
        return self.verbs

    def verb_parser(self, verb: str) -> argparse.ArgumentParser:
        """The subparser of ``verb`` (this parser for none)."""
        return self.verbs.choices[verb] if self.verbs is not None else self

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """As argparse, but an unrecognized argument is the verb's error, with a suggestion."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            verb = self.verb_parser(parsed.verb) if self.verbs is not None else self
            verb.error(unrecognized(extras, _flags(verb)))
        return parsed

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # An unknown verb: its closest, not the list of every verb argparse would print.
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            hint = did_you_mean(value, action.choices)
            text = f"unknown command {value!r}" + (f"; {hint}" if hint else "")
            raise argparse.ArgumentError(None, f"{text} ({HELP})")
        super()._check_value(action, value)


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--")]


def unrecognized(extras: list[str], flags: list[str]) -> str:
    """``unrecognized arguments: --froce (did you mean --force?)``."""
    text = "unrecognized arguments: " + " ".join(extras)
    hints = [
        did_you_mean(extra.split("=", 1)[0], flags)
        for extra in extras
        if extra.startswith("--") and extra != "--"
    ]
    hints = [h for h in hints if h]
    return text + (f" ({'; '.join(hints)})" if hints else "")
