"""Pure parts of the web console: the chart geometry, the heatmap, verdict cells, the session."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.ui.figures import HEAT_LEVELS, LEFT, WIDTH, check_cells, heatmap, line_chart, metric_rows
from api.ui.session import safe_next
from domain.console.promotion import without_cli_advice
from domain.console.sessions import csrf_token, new_csrf_secret, new_session_id, session_hash
from domain.console.views import VersionPoint, check_search, check_trace_id, trace_id_of
from domain.errors import InvalidInput
from events.gates import GateCheck

T = datetime(2026, 11, 26, tzinfo=UTC)


def _points(*values: float | None) -> list[VersionPoint]:
    return [
        VersionPoint(model_version=f"v{i}", created_at=T, accuracy=v, p95_ms=None)
        for i, v in enumerate(values, 1)
    ]


def test_a_chart_spans_its_plot_and_skips_versions_without_the_figure() -> None:
    chart = line_chart(_points(0.5, None, 0.9, 0.7), "accuracy", "Accuracy", ".1%")
    assert chart is not None
    xs = [d["x"] for d in chart["dots"]]
    ys = [d["y"] for d in chart["dots"]]
    assert [d["version"] for d in chart["dots"]] == ["v1", "v3", "v4"]
    assert xs[0] == LEFT and xs[-1] == chart["right"] < WIDTH and xs == sorted(xs)
    assert ys[1] < ys[2] < ys[0]  # higher values are drawn higher (smaller y)
    assert "from 50.0% (v1) to 70.0% (v4)" in chart["summary"]
    assert line_chart(_points(None, None), "accuracy", "Accuracy", ".1%") is None
    flat = line_chart(_points(0.8), "accuracy", "Accuracy", ".1%")
    assert flat is not None and flat["dots"][0]["x"] == LEFT + (chart["right"] - LEFT) / 2


def test_the_heatmap_colours_each_cell_by_its_share_of_the_row() -> None:
    heat = heatmap([[8, 2], [0, 0]], ["cat", "dog"])
    (a, b), (c, d) = (r["cells"] for r in heat["rows"])
    assert a["level"] == round(0.8 * (HEAT_LEVELS - 1)) and b["level"] == 2
    assert a["diagonal"] and not b["diagonal"] and c["level"] == d["level"] == 0
    assert heat["labels"] == ["cat", "dog"] and heat["rows"][0]["label"] == "cat"


def test_verdict_cells_use_the_units_of_just_gate() -> None:
    acc = GateCheck(
        name="accuracy",
        baseline=0.8861,
        candidate=0.9145,
        delta=0.0284,
        threshold=-0.01,
        verdict="PASS",
        p_value=1.5e-39,
        ci_low=0.0241,
        ci_high=0.0328,
    )
    cells = check_cells(acc)
    assert (cells["baseline"], cells["candidate"], cells["delta"]) == (
        "88.61%",
        "91.45%",
        "+2.84 pts",
    )
    assert cells["threshold"] == "≥ -1.00 pts" and cells["p_value"] == "1.5e-39"
    assert cells["interval"] == "[+2.41, +3.28] pts"
    lat = GateCheck(
        name="p95_latency",
        baseline=23.38,
        candidate=20.96,
        delta=-0.103,
        threshold=0.1,
        verdict="PASS",
        ci_low=-0.153,
        ci_high=0.073,
    )
    cells = check_cells(lat)
    assert cells["delta"] == "-10.3%" and cells["threshold"] == "≤ +10%" and cells["p_value"] == ""
    assert cells["interval"] == "[-15.3%, +7.3%]"


def test_metric_rows_put_the_headline_first_and_leave_the_matrix_out() -> None:
    rows = metric_rows(
        {
            "batches": 40,
            "accuracy": 0.91234,
            "confusion_matrix": [[1]],
            "per_class": [],
            "wall_images_per_s": 1234.5,
        }
    )
    assert rows == [("accuracy", "0.9123"), ("batches", "40"), ("wall_images_per_s", "1,234.5")]


def test_the_session_id_is_opaque_and_its_csrf_token_needs_the_server_secret() -> None:
    ids = {new_session_id() for _ in range(50)}
    assert len(ids) == 50 and all(session_hash(i) for i in ids)
    sid = ids.pop()
    assert session_hash(sid) == session_hash(sid) and len(session_hash(sid)) == 64
    assert sid not in session_hash(sid)
    # The old cookie shape (`<id>:<key>`), a short id, odd characters: no session is looked up.
    for bad in ("", "s" * 24 + ":key-with:colon", "short", sid + "=", sid[:-1] + "%", sid * 2):
        assert session_hash(bad) is None, bad
    secret, other = new_csrf_secret(), new_csrf_secret()
    token = csrf_token(secret, session_hash(sid))
    assert len(token) == 64 and token == csrf_token(secret, session_hash(sid))
    assert token != csrf_token(other, session_hash(sid))
    assert token != csrf_token(secret, session_hash(new_session_id()))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/models/m?at=x", "/ui/models/m?at=x"),
        ("https://evil.example/ui/", "/ui/models"),
        ("//evil.example/ui/", "/ui/models"),
        ("/ui\\..\\x", "/ui/models"),
        (None, "/ui/models"),
        ("/schema", "/ui/models"),
        ("/ui/x\nSet-Cookie: a=b", "/ui/models"),
    ],
)
def test_after_login_the_console_only_goes_to_its_own_pages(target, expected) -> None:
    assert safe_next(target) == expected


def test_trace_ids_and_searches_are_checked() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of(f"00-{trace}-00f067aa0ba902b7-01") == trace
    assert trace_id_of(None) is None and trace_id_of(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None
    assert check_trace_id(trace) == trace
    with pytest.raises(InvalidInput, match="32 lowercase hex"):
        check_trace_id("xyz")
    assert check_search("  MNIST ") == "mnist" and check_search("") is None
    for bad in ("%", "a" * 65, "a b", "_%_"):
        with pytest.raises(InvalidInput, match="model names hold only"):
            check_search(bad)


def test_a_refusal_loses_its_command_line_advice_in_the_console() -> None:
    message = (
        "promoting m v2 needs a PASS gate of v2 against prod v1 younger than 24.0h (the model's "
        "policy has require_gate on); there is no gate of v2; run `just gate m v2 v1`, or promote "
        "with --force --reason '...' to override"
    )
    cleaned = without_cli_advice(message)
    assert cleaned.endswith("there is no gate of v2") and "--force" not in cleaned
    assert "`just" not in cleaned and cleaned.startswith("promoting m v2 needs a PASS gate")
    assert without_cli_advice("no prod to roll back to") == "no prod to roll back to"
