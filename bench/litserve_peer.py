"""The tuned peer for ``just bench-predict``: /predict on LitServe, as a skilled user sets it up.

LitServe (Lightning AI) with the configuration its docs recommend for a CPU server under load:
one inference worker per core (``workers_per_device`` = cores on ``accelerator="cpu"``), as many
HTTP server processes (its default), ZeroMQ between them (``fast_queue``, "for >100 RPS"),
dynamic batching up to ``MAX_BATCH`` with a small ``batch_timeout``, and one torch thread per
worker so the workers do not fight over the cores. Each request is decoded by the API's own
``decode_image_b64`` and each batch runs through the same frozen graph the API serves
(``ml.graph.serving_graph``), normalised by the same ``Normalizer``: only the server differs.

    python -m bench.litserve_peer --artifact artifacts/mnist_cnn/v1.0.0/model.pt --port 8003
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import litserve as ls
import numpy as np
import torch

from api.inference import decode_image_b64
from ml.artifacts import load_model, read_metadata
from ml.graph import serving_graph
from ml.preprocess import Normalizer

# LitServe polls its queue every 1 ms while a batch fills (0 would spin a core per worker);
# measured here at c=1 and c=32 against 2 and 5 ms, 1 ms won both.
BATCH_TIMEOUT_S = 0.001


class FrozenGraphAPI(ls.LitAPI):
    """One artifact's frozen graph behind LitServe's decode / batch / predict / encode steps."""

    def __init__(
        self, artifact: str, graph: str, max_batch: int, timeout_s: float = BATCH_TIMEOUT_S
    ) -> None:
        super().__init__(max_batch_size=max_batch, batch_timeout=timeout_s)
        self.artifact, self.graph_mode, self.max_batch = artifact, graph, max_batch

    def setup(self, device) -> None:
        """Load the model and build its serving graph in this worker, one torch thread."""
        torch.set_num_threads(1)
        meta = read_metadata(Path(self.artifact))
        if meta is None:
            raise SystemExit(f"error: {self.artifact} has no metadata.json beside it")
        self.device = torch.device(device)
        module = load_model(Path(self.artifact), meta).to(self.device).eval()
        sizes = (1, self.max_batch)
        self.run = serving_graph(module, self.graph_mode, self.device, sizes).run
        self.normalize = Normalizer.of(meta)
        self.labels = list(meta.class_names)

    def decode_request(self, request: dict) -> np.ndarray:
        """The API's own decode: base64 PNG text -> uint8 [28,28]."""
        return decode_image_b64(request["image_b64"])

    def batch(self, inputs: list[np.ndarray]) -> torch.Tensor:
        """The batch's images as one uint8 tensor."""
        return torch.from_numpy(np.stack(inputs))

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """Normalise and forward the batch; the predicted class of each image."""
        with torch.inference_mode():
            logits = self.run(self.normalize(x.to(self.device)))
        return logits.argmax(dim=1).cpu().numpy()

    def unbatch(self, output: np.ndarray) -> list[int]:
        """One prediction per request."""
        return output.tolist()

    def encode_response(self, output: int) -> dict:
        """The prediction and its label."""
        return {"prediction": output, "label": self.labels[output]}


def main() -> None:
    """Serve one artifact on LitServe."""
    p = argparse.ArgumentParser(prog="python -m bench.litserve_peer")
    p.add_argument("--artifact", required=True, help="model.pt with its metadata.json beside it")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8003)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--max_batch", type=int, default=32)
    p.add_argument("--graph", default="frozen", help="INFERENCE_GRAPH: frozen, auto or eager")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--batch_timeout", type=float, default=BATCH_TIMEOUT_S, help="seconds")
    args = p.parse_args()
    api = FrozenGraphAPI(args.artifact, args.graph, args.max_batch, args.batch_timeout)
    server = ls.LitServer(
        api,
        accelerator=args.accelerator,
        workers_per_device=args.workers,
        fast_queue=True,
        timeout=30,
    )
    server.run(host=args.host, port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
