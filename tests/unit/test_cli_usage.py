"""CLI usage errors: the verb's usage only, the closest flag or verb, exit status 2."""

from __future__ import annotations

import pytest

from cli.main import build_parser, main
from observability.logging import CORRELATION_ID


@pytest.fixture(autouse=True)
def _no_leaked_correlation_id():
    """main() binds a correlation id for its events; later tests expect none bound."""
    token = CORRELATION_ID.set(None)
    yield
    CORRELATION_ID.reset(token)


def _usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_a_misspelt_flag_gets_the_verbs_usage_and_the_closest_flag(capsys) -> None:
    err = _usage_error(capsys, ["promote", "mnist_cnn", "v1", "--froce"])
    assert err.startswith("usage: python -m cli promote "), err
    assert "unrecognized arguments: --froce (did you mean --force?)" in err
    assert "rollback" not in err and "register" not in err  # not every verb's name


def test_a_misspelt_verb_gets_the_closest_verb_not_the_list(capsys) -> None:
    err = _usage_error(capsys, ["promot", "mnist_cnn", "v1"])
    assert "unknown command 'promot'; did you mean promote?" in err, err
    assert "rollback" not in err and "register" not in err


def test_a_missing_version_is_a_usage_error(capsys) -> None:
    err = _usage_error(capsys, ["promote", "mnist_cnn"])
    assert err.startswith("usage: python -m cli promote "), err
    assert err.rstrip().endswith("python -m cli promote: error: missing MODEL_VERSION")


def test_the_top_usage_is_one_line_and_help_still_lists_every_verb() -> None:
    parser = build_parser()
    assert parser.format_usage() == "usage: python -m cli [-h] COMMAND ...\n"
    assert "gate-policy" in parser.format_help() and "promote" in parser.format_help()
