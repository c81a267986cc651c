"""GET /models/{name}/versions/{version}/receipt: the evidence of a promotion, verifiable offline
with `just verify-receipt` (the same JSON as `just receipt`)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from api.deps import Port
from bootstrap.exports import trail_exports
from domain import names
from domain.audit.offline.bundle import Receipt
from domain.audit.ports import TransparencyPort

Transparency = Port[TransparencyPort]


class ReceiptController(Controller):
    """Promotion receipts: registration, gate verdict and promotion, proven into one checkpoint."""

    tags = ["audit"]

    @get(
        "/models/{name:str}/versions/{version:str}/receipt",
        summary="A promotion's receipt, verifiable offline",
        opt={"role": "reader"},
    )
    async def receipt(
        self, transparency: Transparency, name: FromPath[str], version: FromPath[str]
    ) -> Receipt:
        """The registration event, the gate verdict that cleared the version and its latest
        promotion, each with leaf data (base64) and an inclusion proof into one signed (and
        cosigned, where witnesses run) checkpoint. 404 for an unknown model or version, or a
        version never promoted."""
        name, version = names.check_model_name(name), names.check_version(version)
        return await trail_exports(transparency).receipt(name, version)
