"""ONNX Runtime options for the packaged CgriNet on the CPU: speed and SIRST test metrics of each.

    python benchmarks/onnx_options.py [--data ../shared/data/SIRST] [--threads 2] [--repeats 30]
                                      [--calibration 64] [--skip-metrics]

Forms of the packaged graph (``irstd/weights/cgrinet_sirst.onnx``), each timed on 256x256 frames
(median of ``--repeats``, ONNX Runtime's CPU provider on ``--threads`` threads, as irstd runs it)
and scored on the SIRST ``dnanet_50_50/test`` split at probability > 0.5 (the metrics engine):

  opt=disabled|basic|extended|all   graph optimisation level (irstd uses ONNX Runtime's default, all)
  int8-qdq, int8-qop                int8 weights and activations (QDQ nodes, or QLinearConv-style
                                    operators; per-channel weights), the activation ranges
                                    calibrated (min-max) on the first ``--calibration`` images of
                                    the training split

The rule for adopting a faster form (issue 21): SIRST test IoU within 0.2 points of the float
graph and Pd not lower. Needs the SIRST data; exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from irstd.intensity import to_float
from irstd.methods import default_weights
from irstd.onnx_runtime import OnnxModel


def _levels():
    import onnxruntime as ort

    g = ort.GraphOptimizationLevel
    return {"disabled": g.ORT_DISABLE_ALL, "basic": g.ORT_ENABLE_BASIC, "extended": g.ORT_ENABLE_EXTENDED, "all": g.ORT_ENABLE_ALL}


def session_at(path, threads, level):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = level
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")  # as irstd.onnx_runtime.open_session
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize(graph: Path, out: Path, images: list[np.ndarray], mean: float, fmt: str = "qdq") -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(images)

        def get_next(self):
            image = next(self.items, None)
            if image is None:
                return None
            h, w = image.shape
            hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
            x = np.full((1, 1, hp, wp), mean, np.float32)
            x[0, 0, :h, :w] = image
            return {"x": x}

    prepared = out.with_name("prepared.onnx")
    if not prepared.exists():
        quant_pre_process(str(graph), str(prepared), skip_symbolic_shape=True)
    quant_format = QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator
    quantize_static(str(prepared), str(out), Reader(), quant_format=quant_format, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


def time_ms(model: OnnxModel, repeats: int) -> float:
    frame = np.random.default_rng(0).random((256, 256), dtype=np.float32)
    model.predict(frame)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(frame)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def metrics(model: OnnxModel, pairs) -> dict:
    from irstd.metrics import Evaluator

    evaluator = Evaluator(threshold=0.5, sweep=None, keep_per_image=False)
    for image_id, image, mask in pairs:
        evaluator.update(model.predict(image), mask, image_id=image_id)
    s = evaluator.summary()
    return {k: float(s[k]) for k in ("miou", "niou", "pd", "fa")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "SIRST"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--skip-metrics", action="store_true")
    args = parser.parse_args()
    root = Path(args.data)
    if not root.is_dir():
        print(f"{root}: SIRST not found (get it as the README says); nothing measured", file=sys.stderr)
        return 2
    from irstd.data import open_dataset
    from irstd.errors import InputError

    dataset = open_dataset(root)
    weights = default_weights()
    base = OnnxModel(weights, threads=args.threads)
    mean = float(base.input_mean.flatten()[0])
    test = []
    for image_id in dataset.ids("dnanet_50_50/test"):
        try:
            image, mask = dataset.read_pair(image_id)
        except InputError:  # Misc_111: mask and image sizes differ
            continue
        test.append((image_id, to_float(image, None, "auto"), np.asarray(mask, bool)))
    calibration = [to_float(dataset.read_pair(i)[0], None, "auto") for i in list(dataset.ids("dnanet_50_50/train"))[: args.calibration]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        forms = {f"opt={name}": (base.path, level) for name, level in _levels().items()}
        for fmt in ("qdq", "qop"):
            forms[f"int8-{fmt}"] = (quantize(base.path, Path(tmp) / f"int8-{fmt}.onnx", calibration, mean, fmt), _levels()["all"])
        for name, (path, level) in forms.items():
            model = OnnxModel(weights, threads=args.threads)
            model.session = session_at(path, args.threads, level)
            row = {"form": name, "ms": time_ms(model, args.repeats)}
            if not args.skip_metrics:
                row.update(metrics(model, test))
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    print(f"# packaged CgriNet, ONNX Runtime CPU, {args.threads} threads, 256x256, median of {args.repeats}; "
          f"SIRST dnanet_50_50/test ({len(test)} images) at probability > 0.5")
    print(f"{'form':<14} {'ms/frame':>9} {'vs all':>7} {'IoU %':>7} {'nIoU %':>7} {'Pd %':>6} {'Fa 1e-6':>8}")
    reference = next(r for r in rows if r["form"] == "opt=all")
    for r in rows:
        line = f"{r['form']:<14} {r['ms']:>9.1f} {reference['ms'] / r['ms']:>6.2f}x"
        if "miou" in r:
            line += f" {r['miou'] * 100:>7.2f} {r['niou'] * 100:>7.2f} {r['pd'] * 100:>6.2f} {r['fa'] * 1e6:>8.1f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
