"""The networks through ONNX Runtime: the inference engine on the CPU (``--engine auto`` there).

A weights file ``X.safetensors`` runs from ``X.onnx`` next to it when that file was exported from
these very weights (its metadata records their sha256): the packaged weights ship with theirs, so
``irstd detect`` on the CPU imports neither PyTorch nor timm. Other weights are exported once to
the user's cache (``$XDG_CACHE_HOME/irstd/onnx``, else ``~/.cache/irstd/onnx``; keyed by the
weights' sha256 and the irstd and torch versions). ONNX Runtime's CPU provider runs the graph;
speeds against PyTorch are in ``docs/detect.md`` (``benchmarks/infer_speed.py --onnx``).

``python -m irstd.onnx_runtime WEIGHTS.safetensors`` writes ``WEIGHTS.onnx`` next to a file (how
the packaged graph is made; refuses to replace an existing one unless ``--overwrite``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from irstd import __version__
from irstd.errors import InputError

__all__ = ["OnnxModel", "export_onnx", "open_session", "onnx_cache_dir"]

#: Changes when what an exported file holds changes (its name carries it, so old files are not read).
CACHE_FORMAT = "onnx2"
INSTALL_HINT = "ONNX Runtime (a dependency of irstd) is missing: pip install onnx onnxruntime"


def onnx_cache_dir() -> Path:
    """Folder of the exported models (``$XDG_CACHE_HOME/irstd/onnx`` or ``~/.cache/irstd/onnx``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "irstd" / "onnx"


def export_onnx(model, path: str | os.PathLike, weights_sha256: str | None = None) -> Path:
    """Write ``model`` (eval mode, final logits) as ONNX with free height and width, atomically.

    Uses PyTorch's TorchScript exporter (``dynamo=False``, opset 17), which needs only the onnx
    package (the newer exporter also needs onnxscript).

    The input ``x`` is ``(1, C, H, W)`` float32 with ``H`` and ``W`` multiples of the model's
    stride (32), the output ``logits`` ``(1, 1, H, W)``. What running it needs besides is stored
    in the file's metadata: ``input_mean`` (the padding value), ``in_chans``, ``stride`` and
    ``parameters`` (the model's trainable parameter count), and ``weights_sha256`` when given
    (the weights file it was exported from: :class:`OnnxModel` uses a graph found next to the
    weights only when it matches).
    """
    try:
        import onnx
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    import torch

    from irstd.models import count_parameters

    class FinalLogits(torch.nn.Module):  # the final logits only (side outputs come in training)
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return out[-1] if isinstance(out, (list, tuple)) else out

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    was_training = model.training
    model.eval()
    in_chans, stride = int(model.input_mean.shape[1]), int(getattr(model, "stride", 32))
    try:
        x = torch.zeros(1, in_chans, 2 * stride, 2 * stride)
        with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
            warnings.simplefilter("ignore")
            torch.onnx.export(FinalLogits(model), (x,), str(tmp), dynamo=False, opset_version=17,
                              input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {2: "height", 3: "width"}, "logits": {2: "height", 3: "width"}})
        proto = onnx.load(str(tmp))
        extra = () if weights_sha256 is None else (("weights_sha256", weights_sha256),)
        extra += (("initializers_sha256", initializers_sha256(proto)),)
        for key, value in (*extra, ("input_mean", json.dumps(model.input_mean.flatten().tolist())),
                           ("in_chans", str(in_chans)), ("stride", str(stride)),
                           ("parameters", str(int(count_parameters(model)))), ("irstd_version", __version__)):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        model.train(was_training)
        tmp.unlink(missing_ok=True)
    return path


def initializers_sha256(proto) -> str:
    """SHA-256 of an ONNX graph's weights (every initialiser's name, type, shape and bytes, in order).

    Recorded in the graph's metadata by :func:`export_onnx` and checked by :class:`OnnxModel`
    before a graph is used, so a graph whose weights were altered (or damaged) after export is
    exported again from the safetensors weights instead of run.
    """
    from onnx import numpy_helper

    h = hashlib.sha256()
    for init in proto.graph.initializer:
        arr = numpy_helper.to_array(init)
        h.update(f"{init.name}|{arr.dtype}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def verified(path: str | os.PathLike, weights_sha256: str) -> bool:
    """Whether the ONNX file ``path`` was exported from the weights of SHA-256 ``weights_sha256``
    and its initialisers are still those it was exported with (:func:`initializers_sha256`)."""
    import onnx

    try:
        proto = onnx.load(str(path))
    except Exception:  # noqa: BLE001 - any unreadable file is unverified
        return False
    meta = {p.key: p.value for p in proto.metadata_props}
    return meta.get("weights_sha256") == weights_sha256 and meta.get("initializers_sha256") == initializers_sha256(proto)


def _require_runtime():
    try:
        import onnxruntime
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return onnxruntime


def open_session(path: str | os.PathLike, threads: int | None = None, spin: bool = True):
    """An ONNX Runtime CPU session for ``path`` on ``threads`` intra-op threads.

    Default threads: ``OMP_NUM_THREADS`` when set, else ONNX Runtime's choice (one per physical
    core). ``spin`` lets idle worker threads spin briefly between operators instead of sleeping:
    faster on small frames (figures in ``docs/detect.md``), at the price of busy threads while a
    frame runs. When another process keeps the cores busy, set
    ``OMP_NUM_THREADS=1`` (one thread: nothing spins).
    """
    ort = _require_runtime()
    if threads is None:
        threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An irstd model file run by ONNX Runtime; :meth:`predict` works like :func:`irstd.models.predict`.

    A graph is used only when :func:`verified`: exported from these very weights (their SHA-256
    in its metadata) with its initialisers unchanged since (their SHA-256 in its metadata); any
    other graph, next to the weights or in the cache, is exported again from the weights.

    Parameters
    ----------
    weights : path
        An irstd model file (safetensors).
    load : callable, optional
        Returns the PyTorch model of ``weights`` (default :func:`irstd.models.load_model`); called
        only when the cache has no usable ONNX file for these weights (none yet, or one ONNX
        Runtime cannot load, which is replaced), so a cached model runs without importing PyTorch.
    threads : int, optional
        ONNX Runtime's intra-op threads (default: ``OMP_NUM_THREADS`` when set, else ONNX
        Runtime's choice, one per physical core).

    Attributes
    ----------
    path : Path
        The ONNX file in the cache.
    parameters : int
        Trainable parameters of the exported model.
    """

    def __init__(self, weights: str | os.PathLike, load: Callable | None = None, threads: int | None = None):
        _require_runtime()  # before any export
        from irstd.io import sha256_file

        sha = sha256_file(weights)
        self.session = None
        self.path = Path(weights).with_suffix(".onnx")
        if self.path.is_file() and verified(self.path, sha):  # shipped next to the weights
            try:
                self.session = open_session(self.path, threads)
            except Exception:  # noqa: BLE001 - not a usable graph: the cache below
                self.session = None
        if self.session is None:
            key = f"{sha[:16]}-irstd{__version__}-torch{metadata.version('torch')}-{CACHE_FORMAT}"
            self.path = onnx_cache_dir() / f"{Path(weights).stem}-{key}.onnx"
        if self.session is None and self.path.exists() and verified(self.path, sha):
            try:
                self.session = open_session(self.path, threads)
            except Exception:  # noqa: BLE001 - a damaged cache file (ONNX Runtime's own error types)
                self.session = None  # exported again below
        if self.session is None:
            if load is None:
                from irstd.models import load_model

                load = lambda: load_model(weights)  # noqa: E731
            model = load()
            try:
                export_onnx(model, self.path, weights_sha256=sha)
            except OSError as exc:
                raise InputError(f"{self.path.parent}: cannot write the ONNX export ({exc.strerror or exc}); "
                                 "set XDG_CACHE_HOME to a writable folder") from None
            self.session = open_session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.input_mean = np.asarray(json.loads(meta["input_mean"]), dtype=np.float32)
        self.in_chans = int(meta["in_chans"])
        self.stride = int(meta["stride"])
        self.parameters = int(meta["parameters"])

    def predict(self, image: np.ndarray) -> np.ndarray:
        """float32 probabilities of a 2-D float image in [0, 1], same shape (padding as ``predict``)."""
        from scipy.special import expit

        image = np.asarray(image, dtype=np.float32)
        h, w = image.shape
        hp, wp = -(-h // self.stride) * self.stride, -(-w // self.stride) * self.stride
        x = np.empty((1, self.in_chans, hp, wp), dtype=np.float32)
        x[...] = self.input_mean.reshape(1, -1, 1, 1)
        x[0, :, :h, :w] = image
        logits = self.session.run(["logits"], {"x": x})[0]
        return expit(logits[0, 0, :h, :w]).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """``python -m irstd.onnx_runtime WEIGHTS [--overwrite]``: write ``WEIGHTS.onnx`` next to it."""
    import argparse

    from irstd.io import sha256_file
    from irstd.models import load_model

    parser = argparse.ArgumentParser(description="Export an irstd model file to ONNX next to it.")
    parser.add_argument("weights")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.weights).with_suffix(".onnx")
    if out.exists() and not args.overwrite:
        parser.exit(2, f"irstd: error: {out}: exists (pass --overwrite to replace it)\n")
    export_onnx(load_model(args.weights), out, weights_sha256=sha256_file(args.weights))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
