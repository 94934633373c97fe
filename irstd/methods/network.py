"""A network as a method: :class:`NetworkMethod` (CgriNet, ACM, ... from an irstd model file)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irstd.errors import InputError
from irstd.methods.base import _PACKAGE, Method, MethodOutput, _check_image, _tiled_rule
from irstd.methods.options import MethodOptions, resolve_engine
from irstd.models.packaged import PACKAGED_NAMES, family_weights, packaged_weights
from irstd.tiles import map_tiled
from irstd.tta import TTA_MODES, map_tta

#: Frames per batch of a network on a CUDA device (frames of one padded size are grouped; :func:`run_method`).
CUDA_BATCH = 16

_BIT_DEPTH_RULE = re.compile(r"bit_depth=(None|\d+)")


def _bit_depth_from_metadata(meta: dict[str, str]) -> int | None:
    """The ``bit_depth`` the weights were trained with (``None``: the default rule).

    Read from the ``bit_depth`` key; files written before that key existed state it only
    inside ``bit_depth_rule`` (``...to_float(bit_depth=14)...``), which is read instead.
    """
    if "bit_depth" in meta:
        value = meta["bit_depth"].strip().lower()
        return None if value in ("", "none") else int(value)
    found = _BIT_DEPTH_RULE.search(meta.get("bit_depth_rule", ""))
    if not found or found.group(1) == "None":
        return None
    return int(found.group(1))


@dataclass
class NetworkMethod(Method):
    """A network from an irstd model file; the model is loaded on first use and reused."""

    weights: Path = field(default_factory=Path)
    device: str | None = None
    bit_depth: int | None = None
    input_range: str = "bits"
    engine: str = "torch"
    #: Frames of one padded size run together (PyTorch engine, without tiles or tta): :meth:`run_batch`.
    batch_size: int = 1
    _model: Any = field(default=None, init=False, repr=False, compare=False)
    _onnx: Any = field(default=None, init=False, repr=False, compare=False)
    _parameters: int | None = field(default=None, init=False, repr=False, compare=False)

    def model(self):
        """The loaded PyTorch model (loaded once).

        On the CPU its tensors are put in channels-last memory format: faster there, with the
        same masks (``benchmarks/infer_speed.py``; figures in ``docs/detect.md``).
        """
        if self._model is None:
            import torch

            from irstd.models import count_parameters, load_model

            model = load_model(self.weights, device=self.device)
            if next(model.parameters()).device.type == "cpu":
                model = model.to(memory_format=torch.channels_last)
            self._model = model
            self._parameters = int(count_parameters(model))
        return self._model

    def onnx_model(self):
        """The ONNX Runtime model (``engine="onnx"``; exported on first use, loaded once)."""
        if self._onnx is None:
            from irstd.onnx_runtime import OnnxModel

            self._onnx = OnnxModel(self.weights)
            self._parameters = self._onnx.parameters
        return self._onnx

    @property
    def weights_file(self) -> Path:  # noqa: D102 - documented on Method
        return self.weights

    def record(self) -> dict[str, Any]:  # noqa: D102 - documented on Method
        return {**super().record(), "weights": str(self.weights), "bit_depth": self.bit_depth,
                "input_range": self.input_range, "engine": self.engine, "device": self.device}

    def code_files(self) -> list[Path]:
        """Adds the ``irstd.models`` package, ``intensity.py`` (the input mapping), ``tta.py`` and,
        run by ONNX Runtime, ``onnx_runtime.py``."""
        models = [f for f in sorted((_PACKAGE / "models").glob("*.py")) if f.name != "__init__.py"]
        onnx = [_PACKAGE / "onnx_runtime.py"] if self.engine == "onnx" else []
        own = [Path(__file__).resolve(), *models, _PACKAGE / "intensity.py", *onnx, _PACKAGE / "tta.py"]
        return [*super().code_files(), *own]

    @property
    def parameters(self) -> int | None:  # noqa: D102 - documented on Method
        if self._parameters is None:
            if self.engine == "onnx":
                self.onnx_model()
            else:
                self.model()
        return self._parameters

    def run(self, image: np.ndarray) -> MethodOutput:
        from irstd.intensity import to_float
        from irstd.metrics import threshold_scores

        image = _check_image(image)
        if self.engine == "onnx":
            run = self.onnx_model().predict
        else:
            from irstd.models import predict

            model = self.model()
            run = lambda x: predict(model, x)  # noqa: E731
        x = to_float(image, self.bit_depth, self.input_range)
        start = time.perf_counter()
        probs = map_tta(lambda v: map_tiled(run, v, self.tile, self.overlap), x, self.tta)
        seconds = time.perf_counter() - start
        mask = threshold_scores(probs, self.threshold)
        return MethodOutput(scores=probs.astype(np.float64), mask=mask, raw=None, seconds=seconds)

    def run_batch(self, images: list[np.ndarray]) -> list[MethodOutput]:
        """:meth:`run` on several images; frames of one padded size go through the network together.

        The network pads every frame at the bottom and right to multiples of its stride (32 for CgriNet)
        with its input mean; frames whose padded sizes agree are stacked so padded, in batches of
        at most ``batch_size`` frames of 256² worth of pixels (``batch_size`` frames of 256×256,
        fewer of bigger ones), and each output is cropped back: the probabilities equal
        one-at-a-time runs within float tolerance. Only the PyTorch engine without tiles or
        test-time augmentation batches (otherwise one image at a time). Each output's
        ``seconds`` is its share of its batch.
        """
        if self.engine != "torch" or self.tile is not None or self.tta != "none" or len(images) < 2:
            return [self.run(image) for image in images]
        import torch

        from irstd.intensity import to_float
        from irstd.metrics import threshold_scores
        from irstd.models import predict_batch
        from irstd.models.inference import pad_to_multiple

        images = [_check_image(image) for image in images]
        model = self.model()
        mean, chans, stride = model.input_mean.detach().cpu(), int(model.input_mean.shape[1]), model.stride
        outputs: list[MethodOutput | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, image in enumerate(images):
            h, w = image.shape
            groups.setdefault((-(-h // stride) * stride, -(-w // stride) * stride), []).append(k)
        for (hp, wp), members in groups.items():
            per_batch = max(1, min(self.batch_size, self.batch_size * 256 * 256 // (hp * wp)))
            for first in range(0, len(members), per_batch):
                chunk = members[first : first + per_batch]
                start = time.perf_counter()
                x = torch.cat([  # each frame padded as the network pads it alone
                    pad_to_multiple(torch.from_numpy(to_float(images[k], self.bit_depth, self.input_range))[None, None]
                                    .expand(-1, chans, -1, -1), mean, stride)
                    for k in chunk
                ])
                probs = predict_batch(model, x)[:, 0].float().cpu().numpy()
                seconds = (time.perf_counter() - start) / len(chunk)
                for row, k in enumerate(chunk):
                    h, w = images[k].shape
                    p = np.ascontiguousarray(probs[row, :h, :w])
                    outputs[k] = MethodOutput(scores=p.astype(np.float64), mask=threshold_scores(p, self.threshold),
                                              raw=None, seconds=seconds)
        return outputs

    def __getstate__(self):  # a pickled method reloads its model in the worker
        state = dict(self.__dict__)
        state["_model"] = None
        state["_onnx"] = None
        return state



def _network(family: str, file: str | None, options: MethodOptions) -> NetworkMethod:
    """``family`` (``cgrinet``, ``acm`` ...) with its packaged weights, or ``family:FILE``."""
    from irstd.intensity import input_rule, parse_input_range
    from irstd.model_file import architecture_of, read_weights_metadata
    from irstd.models.registry import family_display

    engine, device = resolve_engine(options.engine, options.device)
    if file is None:
        weights = family_weights(family)
        if weights is None:
            raise InputError(f"--method {family}: no trained {family} weights are packaged; pass {family}:FILE (or --weights FILE)")
        label = family
    else:
        packaged = file in PACKAGED_NAMES or file == family
        weights = packaged_weights(file) if packaged else Path(file)
        label = f"{family}:{file if packaged else weights.stem}"
    meta = read_weights_metadata(weights)  # checks the file before any image is read
    architecture = architecture_of(meta)
    if architecture.lower() != family:
        raise InputError(f"{weights}: holds a {architecture} model, not {family} (use --method {architecture.lower()}:FILE)")
    display = family_display(family)
    bits = options.bit_depth if options.bit_depth is not None else _bit_depth_from_metadata(meta)
    rng = options.input_range
    if rng is None:
        try:
            rng = parse_input_range(meta.get("input_range", "bits"))
        except InputError as exc:
            raise InputError(f"{weights}: unusable input_range in the metadata ({exc})") from None
    tta = options.tta
    t = 0.5 if options.threshold is None else options.threshold
    return NetworkMethod(
        name=label,
        kind="network",
        score_rule=f"sigmoid probability of {display} ({meta.get('model', display)}); input {input_rule(rng, bits)}"
        + ("; run by ONNX Runtime" if engine == "onnx" else "") + _tiled_rule(options)
        + ("" if tta == "none" else f"; mean over {TTA_MODES[tta]} {tta} views (--tta {tta})"),
        mask_rule=f"probability > {t:g}",
        threshold=t,
        options=options,
        weights=weights,
        device=device,
        bit_depth=bits,
        input_range=rng,
        engine=engine,
        batch_size=CUDA_BATCH if device.startswith("cuda") else 1,
    )
