"""CgriNet inference speed on the CPU: ms per 256x256 frame, eager vs faster paths, one run.

Paths, all on the same randomly initialised weights (speed does not depend on them):
  eager          model.eval() under torch.no_grad()
  inference      model.eval() under torch.inference_mode()   (what irstd.models.inference uses)
  channels_last  inference + channels_last memory format     (what detect/evaluate/compare use on the CPU)
  compiled       torch.compile(model) under inference_mode   (--compile; slow to warm up)
  onnxruntime    irstd.onnx_runtime: the model exported by torch.onnx (TorchScript exporter, opset
                 17), run by ONNX Runtime's CPU provider on the same threads, as `--engine onnx`
                 runs it (--onnx; timed last)

Every path is checked against eager (max |difference| of the logits is printed), and the ratio to
eager is measured in the same run, so the figures hold on a noisy machine.

    python benchmarks/infer_speed.py [--variants cgrinet_small cgrinet packaged] [--size 256] [--repeats 10]
                                     [--threads 2] [--compile] [--onnx]
    python benchmarks/infer_speed.py --device cuda [--variants packaged cgrinet] [--batch 16]
    python benchmarks/infer_speed.py --dataset DATA/SIRST [--split dnanet_50_50/test] [--device cuda]

``packaged`` is the model of the packaged weights (``irstd/weights``, with their trained values).

``--device cuda`` prints frames/s of ``irstd.models.predict_batch`` (what ``detect``, ``evaluate``
and ``compare`` run on a GPU) at batch 1 and at ``--batch`` (default
``irstd.methods.CUDA_BATCH``), float32, with the max |difference| of the batched probabilities
from the one-at-a-time ones.

``--dataset DIR`` runs the packaged model with PyTorch over a split the way ``irstd evaluate`` does
(:func:`irstd.methods.run_method`), one frame at a time and batched (frames of one padded size
together, ``--batch`` frames), and prints frames/s of model time, the max |difference| of the
probabilities and IoU / Pd of both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from irstd.methods import default_weights
from irstd.models import create_model, list_models, load_model


def _build(name: str) -> torch.nn.Module:
    if name == "packaged":
        return load_model(default_weights()).eval()
    return create_model(name).eval()


def _time(fn, x, repeats: int) -> tuple[float, torch.Tensor]:
    out = fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, out


def _onnx_path(model: torch.nn.Module, threads: int):
    """A function running ``model`` through ONNX Runtime, or None when it is not installed."""
    import tempfile

    from irstd.errors import InputError
    from irstd.onnx_runtime import export_onnx, open_session

    with tempfile.TemporaryDirectory() as tmp:
        try:
            session = open_session(export_onnx(model, f"{tmp}/model.onnx"), threads)
        except InputError:  # onnx or onnxruntime missing
            return None

    def run(t):
        return torch.from_numpy(session.run(None, {"x": t.numpy()})[0])

    return run


def measure(name: str, size: int, repeats: int, compile_: bool, onnx_: bool = False, threads: int = 2) -> dict:
    torch.manual_seed(0)
    model = _build(name)
    x = torch.rand(1, 1, size, size)

    def eager(t):
        with torch.no_grad():
            return model(t)

    def inference(t):
        with torch.inference_mode():
            return model(t)

    row = {"variant": name}
    base_ms, ref = _time(eager, x, repeats)
    row["eager_ms"] = base_ms
    paths = {"inference": (inference, x)}
    cl_model = _build(name)
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.to(memory_format=torch.channels_last)

    def channels_last(t):
        with torch.inference_mode():
            return cl_model(t)

    paths["channels_last"] = (channels_last, x.contiguous(memory_format=torch.channels_last))
    if compile_:
        compiled = torch.compile(model)

        def compiled_fn(t):
            with torch.inference_mode():
                return compiled(t)

        paths["compiled"] = (compiled_fn, x)
    if onnx_:
        run = _onnx_path(model, threads)
        if run is None:
            print("onnxruntime: not installed (pip install onnx onnxruntime); path left out", file=sys.stderr)
        else:
            paths["onnxruntime"] = (run, x)  # last: nothing of torch runs after it
    for key, (fn, inp) in paths.items():
        ms, out = _time(fn, inp, repeats)
        row[f"{key}_ms"] = ms
        row[f"{key}_ratio"] = base_ms / ms
        row[f"{key}_maxdiff"] = float((out.float() - ref.float()).abs().max())
    return row


def measure_cuda(name: str, size: int, repeats: int, batch: int) -> dict:
    from irstd.models import predict_batch

    torch.manual_seed(0)
    model = _build(name).to("cuda")
    frames = torch.rand(batch, 1, size, size, device="cuda")
    row = {"variant": name}
    for b in (1, batch):
        x = frames[:b]
        predict_batch(model, x)  # warm-up (cuDNN picks its kernels)
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            predict_batch(model, x)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        row[f"fps_batch{b if b == 1 else 'N'}"] = b / statistics.median(times)
    single = torch.cat([predict_batch(model, frames[k : k + 1]) for k in range(batch)])
    row["maxdiff"] = float((predict_batch(model, frames) - single).abs().max())
    return row


def measure_dataset(root: str, split: str, device: str, batch: int) -> None:
    from dataclasses import replace

    import numpy as np

    from irstd.data import open_dataset
    from irstd.errors import InputError
    from irstd.methods import get_method, run_method
    from irstd.metrics import Evaluator

    dataset = open_dataset(root)
    pairs = []
    for image_id in dataset.ids(split):
        try:
            pairs.append((image_id, *dataset.read_pair(image_id)))
        except InputError:  # SIRST's Misc_111 (mask and image sizes differ)
            continue
    single = get_method("cgrinet", engine="torch", device=device)
    runs = {}
    for name, method in (("one at a time", replace(single, batch_size=1)), (f"batches of {batch}", replace(single, batch_size=batch))):
        list(run_method(method, [p[1] for p in pairs[:batch]]))  # warm-up (cuDNN, allocator)
        outputs = list(run_method(method, [p[1] for p in pairs]))
        evaluator = Evaluator(threshold=0.5, sweep=None, keep_per_image=False)
        for (image_id, _, mask), out in zip(pairs, outputs):
            evaluator.update(out.scores, mask, image_id=image_id)
        summary = evaluator.summary()
        seconds = sum(o.seconds for o in outputs)
        runs[name] = outputs
        print(f"{name:<16} {len(pairs) / seconds:>9.0f} frames/s of model time   IoU {summary['miou'] * 100:.2f}  Pd {summary['pd'] * 100:.2f}")
    a, b = runs.values()
    print(f"max |batched - one at a time| = {max(float(np.abs(x.scores - y.scores).max()) for x, y in zip(a, b)):.1e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = list_models() + (["packaged"] if default_weights() else [])
    parser.add_argument("--variants", nargs="*", default=default)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime (if installed)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu (the paths above) or cuda (batched frames/s)")
    parser.add_argument("--batch", type=int, default=None, help="--device cuda: frames per batch (default CUDA_BATCH)")
    parser.add_argument("--dataset", default=None, help="run the packaged model over a split, one at a time and batched")
    parser.add_argument("--split", default="dnanet_50_50/test")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.dataset:
        from irstd.methods import CUDA_BATCH

        print(f"# packaged CgriNet, PyTorch on {args.device}, {args.dataset} {args.split}")
        measure_dataset(args.dataset, args.split, args.device, args.batch or CUDA_BATCH)
        return 0
    if args.device.startswith("cuda"):
        from irstd.methods import CUDA_BATCH

        batch = args.batch or CUDA_BATCH
        print(f"# {torch.cuda.get_device_name()}, {args.size}x{args.size} frames, float32, median of {args.repeats}; "
              "maxdiff = max |batched - one-at-a-time probability|")
        print(f"{'variant':<15} {'frames/s, batch 1':>18} {'frames/s, batch ' + str(batch):>20} {'maxdiff':>8}")
        for v in args.variants:
            r = measure_cuda(v, args.size, args.repeats, batch)
            print(f"{v:<15} {r['fps_batch1']:>18.0f} {r['fps_batchN']:>20.0f} {r['maxdiff']:>8.1e}")
        return 0
    rows = [measure(v, args.size, args.repeats, args.compile, args.onnx, args.threads) for v in args.variants]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    paths = [k[:-3] for k in rows[0] if k.endswith("_ms") and k != "eager_ms"]
    print(f"# {args.threads} threads, 1x1x{args.size}x{args.size}, median of {args.repeats}; "
          "ratio = eager / path (higher is faster); maxdiff = max |logit - eager logit|")
    header = f"{'variant':<15} {'eager ms':>9}" + "".join(f" {p + ' ms':>18} {'ratio':>6} {'maxdiff':>8}" for p in paths)
    print(header)
    for r in rows:
        line = f"{r['variant']:<15} {r['eager_ms']:>9.1f}"
        for p in paths:
            line += f" {r[p + '_ms']:>18.1f} {r[p + '_ratio']:>6.2f} {r[p + '_maxdiff']:>8.1e}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
