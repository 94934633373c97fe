"""``irstd compare`` end to end on a small synthetic dataset: files, numbers, cache, errors."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from irstd import methods as methods_module
from irstd.cli.main import app
from irstd.compare import MARKER, OUTPUT_FILES, TABLE_FIELDS, latex_table, method_key, parse_methods
from irstd.data import open_dataset
from irstd.errors import InputError
from irstd.figures import block_max
from irstd.methods import get_method
from irstd.metrics import Evaluator
from irstd.protocol import rules

FIGURES = ("roc.png", "pr.png", "pd_fa.png", "surfaces.png", "qualitative.png")


def _invoke(*args):
    return CliRunner().invoke(app, ["compare", *map(str, args)])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 test images of 96x96 (IPI/NRAM need >= 50x50) and a tiny CgriNet weights file."""
    import torch

    from irstd.models import create_model, save_weights
    from irstd.synth import write_dataset

    root = tmp_path_factory.mktemp("compare")
    write_dataset(root / "ds", count=8, size=(96, 96), seed=3)
    torch.manual_seed(0)
    weights = save_weights(create_model("cgrinet_test"), root / "tiny.safetensors")
    return root, root / "ds", weights


@pytest.fixture(scope="module")
def first(data):
    """lcm, ipi and CgriNet computed from scratch."""
    root, ds, weights = data
    out = root / "first"
    result = _invoke("--dataset", ds, "--split", "test", "--methods", f"lcm,ipi,cgrinet:{weights}", "--out", out)
    assert result.exit_code == 0, result.output
    return out


class _Spy:
    """Records which methods ran (patched onto the Method classes: in-process runs only)."""

    def __init__(self, mp):
        self.calls = []
        for cls in (methods_module.ClassicalMethod, methods_module.NetworkMethod):
            original = cls.run

            def run(method, image, _original=original):
                self.calls.append(method.name)
                return _original(method, image)

            mp.setattr(cls, "run", run)


@pytest.fixture(scope="module")
def full(data, first):
    """The first folder reused with NRAM added (another run: --overwrite): only NRAM may run."""
    root, ds, weights = data
    out = root / "full"
    shutil.copytree(first, out)
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(mp)
        result = _invoke(
            "--dataset", ds, "--split", "test", "--methods", f"lcm,ipi,nram,cgrinet:{weights}", "--out", out, "--json",
            "--overwrite",
        )
    assert result.exit_code == 0, result.output
    return out, spy.calls, result


def test_outputs_are_valid_files(full):
    out, _, result = full
    for name in (MARKER, *OUTPUT_FILES):
        assert (out / name).is_file(), name
    for name in FIGURES:
        with Image.open(out / name) as im:
            im.verify()
            assert im.format == "PNG"
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == TABLE_FIELDS
    assert [r["method"] for r in rows] == ["lcm", "ipi", "nram", "cgrinet:tiny"]
    doc = json.loads((out / "metrics.json").read_text())
    assert json.loads(result.stdout) == doc  # --json prints metrics.json
    assert doc["protocol"]["evaluated"] == 4 and doc["skipped"] == []
    assert {k: doc["protocol"][k] for k in rules()} == rules()  # the protocol of irstd.protocol, as evaluate's
    assert len(doc["figure_images"]) == 3
    report = (out / "report.md").read_text()
    assert "| method | AUC | IoU (%)" in report and "![ROC](roc.png)" in report
    assert "## At each method's best threshold (optimistic)" in report
    for r in doc["methods"]:
        assert f"| {r['method']} | {r['best_threshold']['threshold']:.2f} | " in report
    assert doc["protocol"]["ids_sha256"][:16] in report
    for r in doc["methods"]:
        assert f"| {r['display']} | {r['kind']} | {r['info']['score_rule']} | {r['info']['mask_rule']} |" in report
    assert "numpy" in report and "torch" in report and "timm" in report
    assert "None." in report  # no skipped image
    # Table on stderr (rich), progress lines per method when not a terminal.
    assert "nram: 4 images (4 computed, 0 cached, 0 skipped)" in result.stderr
    assert "lcm: 4 images (0 computed, 4 cached, 0 skipped)" in result.stderr


def test_adding_a_method_computes_only_it(full):
    _, calls, _ = full
    assert calls == ["nram"] * 4


def test_numbers_equal_the_evaluator_on_the_method_outputs(data, full):
    _, ds_root, weights = data
    out, _, _ = full
    ds = open_dataset(ds_root)
    doc = json.loads((out / "metrics.json").read_text())
    by_label = {r["method"]: r for r in doc["methods"]}
    for spec, label in (("lcm", "lcm"), ("ipi", "ipi"), ("nram", "nram"), (f"cgrinet:{weights}", "cgrinet:tiny")):
        method = get_method(spec)
        ev = Evaluator()
        for image_id in ds.ids(split="test"):
            image, gt = ds.read_pair(image_id)
            output = method.run(image)
            ev.update(output.scores, gt, image_id=image_id, pred=output.mask)
        s = ev.summary()
        row = by_label[label]
        for key in ("auc", "ap", "miou", "niou", "precision", "recall", "f1", "pd", "fa", "targets", "hits"):
            assert row[key] == s[key] or (np.isnan(s[key]) and row[key] is None), (label, key)
        c = ev.pd_fa_curve()
        assert doc["pd_fa_curves"][label]["pd"] == c.pd.tolist()
        assert row["best_threshold"] == pytest.approx(ev.best_threshold(), abs=1e-12, nan_ok=True), label
        assert doc["pd_fa_curves"][label]["fa"] == c.fa.tolist()
        with open(out / "per_image.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["method"] == label]
        assert [float(r["iou"]) for r in rows] == [r["iou"] for r in ev.per_image]  # full precision


def test_network_row_equals_irstd_evaluate_on_the_cached_maps(data, full, tmp_path):
    # CgriNet's own rule is probability > 0.5, the rule of `irstd evaluate`: same numbers.
    _, ds_root, _ = data
    out, _, _ = full
    cache = next((out / "cache").glob("cgrinet-*"))
    pred = tmp_path / "pred"
    pred.mkdir()
    for f in cache.glob("*.npy"):
        shutil.copy(f, pred / f.name)
    result = CliRunner().invoke(
        app, ["evaluate", "--dataset", str(ds_root), "--split", "test", "--predictions", str(pred), "--json"]
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    row = next(r for r in json.loads((out / "metrics.json").read_text())["methods"] if r["method"] == "cgrinet:tiny")
    for key in ("auc", "ap", "miou", "niou", "f1", "pd", "fa"):
        assert row[key] == evaluated[key], key


def test_rerun_recomputes_nothing(data, full):
    _, ds, weights = data
    out, _, _ = full
    before = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*")}
    table = (out / "metrics.csv").read_text()
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(mp)
        result = _invoke("--dataset", ds, "--split", "test", "--methods", f"lcm,ipi,nram,cgrinet:{weights}", "--out", out)
    assert result.exit_code == 0, result.output
    assert spy.calls == []
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*")} == before
    strip = lambda text: [line.rsplit(",", 0) for line in text.splitlines()]  # noqa: E731
    assert strip((out / "metrics.csv").read_text()) == strip(table)


def test_cache_key_follows_rules_and_weights(data, tmp_path):
    _, _, weights = data
    key = method_key("lcm", get_method("lcm"))
    assert key != method_key("lcm", get_method("lcm", threshold=0.3))
    moved = tmp_path / "other.safetensors"
    shutil.copy(weights, moved)
    a = method_key(f"cgrinet:{weights}", get_method(f"cgrinet:{weights}"))
    b = method_key(f"cgrinet:{moved}", get_method(f"cgrinet:{moved}"))
    assert a == b  # same bytes elsewhere: same cache
    with open(moved, "r+b") as f:  # other bytes: another cache
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    assert method_key(f"cgrinet:{moved}", get_method(f"cgrinet:{moved}")) != a


def test_corrupt_image_skipped_or_stops(data, tmp_path):
    _, ds, _ = data
    bad = tmp_path / "ds"
    shutil.copytree(ds, bad)
    png = (bad / "images" / "synth_0006.png").read_bytes()
    (bad / "images" / "synth_0006.png").write_bytes(png[: len(png) // 2])  # header fine, pixels cut
    result = _invoke("--dataset", bad, "--split", "test", "--methods", "lcm", "--out", tmp_path / "stop")
    assert result.exit_code == 2
    assert result.stderr.startswith("irstd: error: ") and result.stderr.count("\n") == 1
    assert "synth_0006.png" in result.stderr
    cached = sorted(p.stem for p in (tmp_path / "stop" / "cache").glob("*/*.json") if p.name != "key.json")
    assert cached == ["synth_0004", "synth_0005"]  # work done before the bad image stays

    result = _invoke(
        "--dataset", bad, "--split", "test", "--methods", "lcm,nram", "--out", tmp_path / "stop", "--skip-errors"
    )
    assert result.exit_code == 3, result.output
    assert "skipped synth_0006" in result.stderr
    doc = json.loads((tmp_path / "stop" / "metrics.json").read_text())
    assert [s["id"] for s in doc["skipped"]] == ["synth_0006"]
    assert doc["protocol"]["evaluated"] == 3 and all(r["images"] == 3 for r in doc["methods"])
    assert "- `synth_0006`: " in (tmp_path / "stop" / "report.md").read_text()


def test_out_folder_rules(data, first, tmp_path):
    _, ds, _ = data
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = _invoke("--dataset", ds, "--split", "test", "--methods", "lcm", "--out", foreign)
    assert result.exit_code == 2 and "not an irstd compare folder" in result.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]

    reused = tmp_path / "reused"
    shutil.copytree(first, reused)
    refused = _invoke("--dataset", ds, "--split", "test", "--methods", "lcm", "--out", reused, "--images", "synth_0005")
    assert refused.exit_code == 2 and "holds another compare run" in refused.stderr  # other methods
    assert (reused / "qualitative.png").is_file()  # nothing of the earlier run lost
    result = _invoke("--dataset", ds, "--split", "test", "--methods", "lcm", "--out", reused, "--overwrite",
                     "--images", "synth_0005")
    assert result.exit_code == 0, result.output
    assert "lcm: 4 images (0 computed, 4 cached" in result.stderr  # its outputs replaced, the cache reused
    assert len(list((reused / "cache").iterdir())) == 3  # lcm, ipi, cgrinet: kept
    doc = json.loads((reused / "metrics.json").read_text())
    assert doc["figure_images"] == [{"id": "synth_0005", "why": "chosen with --images"}]

    result = _invoke("--dataset", ds, "--split", "test", "--methods", "lcm", "--out", reused, "--images", "nope")
    assert result.exit_code == 2 and "--images" in result.stderr


def test_parse_methods_and_block_max():
    assert parse_methods(" lcm, ipi ,,nram") == ["lcm", "ipi", "nram"]
    with pytest.raises(InputError, match="twice"):
        parse_methods("lcm,lcm")
    with pytest.raises(InputError):
        parse_methods(" , ")
    x = np.zeros((200, 130))
    x[101, 77] = 1.0  # one-pixel peak survives the reduction
    small = block_max(x, 64)
    assert max(small.shape) <= 64 and small.max() == 1.0


def test_killed_run_resumes_from_the_cache(data, full, tmp_path):
    # A run killed mid-way: records of two ids missing (their json is written last), a temporary
    # file left behind. The rerun computes exactly those two.
    _, ds, weights = data
    out = tmp_path / "killed"
    shutil.copytree(full[0], out)
    nram = next((out / "cache").glob("nram-*"))
    for image_id in ("synth_0005", "synth_0007"):
        (nram / f"{image_id}.json").unlink()
    (nram / ".synth_0007.npy.1234abcd.tmp.npy").write_bytes(b"partial")
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(mp)
        result = _invoke("--dataset", ds, "--split", "test", "--methods", "nram", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert spy.calls == ["nram", "nram"]
    assert "nram: 4 images (2 computed, 2 cached, 0 skipped)" in result.stderr


def test_mask_of_another_size_is_caught_before_any_work(data, tmp_path):
    _, ds, _ = data
    bad = tmp_path / "ds"
    shutil.copytree(ds, bad)
    Image.fromarray(np.zeros((50, 60), np.uint8)).save(bad / "masks" / "synth_0005.png")
    with pytest.MonkeyPatch.context() as mp:
        spy = _Spy(mp)
        result = _invoke("--dataset", bad, "--split", "test", "--methods", "lcm", "--out", tmp_path / "o")
        assert result.exit_code == 2 and "mask is 60x50 (WxH) but the image synth_0005.png is 96x96" in result.stderr
        assert spy.calls == []
        result = _invoke(
            "--dataset", bad, "--split", "test", "--methods", "lcm", "--out", tmp_path / "o", "--skip-errors"
        )
    assert result.exit_code == 3 and spy.calls == ["lcm"] * 3


def test_cache_key_follows_one_byte_of_the_code(monkeypatch, tmp_path):
    import shutil

    method = get_method("lcm")
    real = method.code_files()
    assert "lcm.py" in [f.name for f in real]
    assert method_key("lcm", method) == method_key("lcm", get_method("lcm"))  # stable
    copies = []
    for k, f in enumerate(real):  # the method's real source files, copied so one byte can change
        copies.append(tmp_path / f"{k}_{f.name}")
        shutil.copyfile(f, copies[-1])
    monkeypatch.setattr(method, "code_files", lambda: copies)
    key = method_key("lcm", method)["code_sha256"]
    lcm_copy = next(c for c in copies if c.name.endswith("_lcm.py"))
    text = bytearray(lcm_copy.read_bytes())
    text[-2] ^= 1  # one bit of one byte
    lcm_copy.write_bytes(bytes(text))
    assert method_key("lcm", method)["code_sha256"] != key


def test_one_changed_image_alone_is_recomputed(data, tmp_path):
    import shutil

    import numpy as np

    from irstd.io import read_image, write_image

    _, ds, _ = data
    copy = tmp_path / "ds"
    shutil.copytree(ds, copy)
    out = tmp_path / "out"
    first = _invoke("--dataset", copy, "--split", "test", "--methods", "lcm", "--out", out)
    assert first.exit_code == 0 and "lcm: 4 images (4 computed, 0 cached" in first.stderr
    image_id = (copy / "splits" / "test.txt").read_text().split()[0]
    path = next((copy / "images").glob(f"{image_id}.*"))
    pixels = read_image(path).copy()
    pixels[0, 0] = pixels[0, 0] ^ 1 if pixels.dtype.kind == "u" else pixels[0, 0] + 1  # one pixel, one bit
    path.unlink()
    write_image(path, pixels)
    again = _invoke("--dataset", copy, "--split", "test", "--methods", "lcm", "--out", out)
    assert again.exit_code == 0, again.stderr
    assert "lcm: 4 images (1 computed, 3 cached" in again.stderr


def test_latex_table_escapes_and_marks_the_best():
    rows = [
        dict(method="cgrinet:my_run", auc=0.965, miou=0.7237, niou=0.7329, f1=0.8397, pd=0.9351, fa=17.51e-6,
             seconds_per_image=0.09, parameters=1824106),
        dict(method="ipi", auc=0.9144, miou=0.5843, niou=0.626, f1=0.7376, pd=0.958, fa=166.01e-6,
             seconds_per_image=2.4, parameters=None),
        dict(method="lcm", auc=0.9712, miou=0.0907, niou=0.1456, f1=0.1664, pd=0.958, fa=float("nan"),
             seconds_per_image=0.013, parameters=None),
    ]
    tex = latex_table(rows)
    body = [line for line in tex.splitlines() if line.endswith(r"\\") and not line.startswith("Method")]
    assert body[0] == (r"cgrinet:my\_run & 0.9650 & \textbf{72.37} & \textbf{73.29} & \textbf{83.97} & 93.51 & "
                       r"\textbf{17.51} & 0.090 & 1.824 M \\")
    assert body[1].startswith(r"ipi & 0.9144 & 58.43 & 62.60 & 73.76 & \textbf{95.80} & 166.01 &")
    assert body[1].endswith(r"& -- \\")
    assert body[2].startswith(r"lcm & \textbf{0.9712} &") and r"\textbf{95.80} & n/a &" in body[2]  # ties: both bold
    assert tex.count(r"\begin{tabular}") == 1 and r"\bottomrule" in tex


def test_tile_is_part_of_the_method_and_its_cache(data, first, tmp_path):
    _, ds, _ = data
    out = tmp_path / "tiled"
    shutil.copytree(first, out)
    result = _invoke("--dataset", ds, "--split", "test", "--methods", "lcm", "--tile", "64", "--overlap", "26",
                     "--out", out, "--json", "--overwrite")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (row,) = doc["methods"]
    assert row["computed"] > 0 and row["cached"] == 0  # not the untiled cache
    assert row["info"]["cache_key"]["tile"] == {"size": 64, "overlap": 26}
    assert "on 64-pixel tiles overlapping by 26" in row["score_rule"]
    plain = {r["method"]: r for r in json.loads((first / "metrics.json").read_text())["methods"]}["lcm"]
    for key in ("miou", "niou", "pd", "fa", "auc"):  # LCM with overlap >= 26: the same maps
        assert row[key] == plain[key], key
    bad = _invoke("--dataset", ds, "--split", "test", "--methods", "lcm", "--tile", "32", "--out", tmp_path / "b")
    assert bad.exit_code == 2 and "--tile" in bad.stderr


def test_compat_dnanet_equals_irstd_evaluate_compat(data, first, tmp_path):
    _, ds, _ = data
    bad = tmp_path / "ds"
    shutil.copytree(ds, bad)
    # a mask of another size: DNANet resizes image and mask alike, so the protocol keeps the id
    mask = np.asarray(Image.open(bad / "masks" / "synth_0005.png"))
    Image.fromarray(np.kron(mask, np.ones((1, 2), np.uint8))).save(bad / "masks" / "synth_0005.png")
    out = tmp_path / "compat"
    shutil.copytree(first, out)
    result = _invoke("--dataset", bad, "--split", "test", "--methods", "lcm", "--compat", "dnanet", "--out", out,
                     "--json", "--overwrite")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (row,) = doc["methods"]
    assert row["computed"] == row["images"] and row["info"]["cache_key"]["compat"] == "dnanet"  # not the native cache
    assert doc["protocol"]["compat"] == "dnanet" and "256x256" in doc["protocol"]["resolution"]
    assert "dnanet's code" in doc["protocol"]["fa_rule"]
    ev = CliRunner().invoke(app, ["evaluate", "--dataset", str(bad), "--split", "test", "--method", "lcm",
                                  "--compat", "dnanet", "--json"])
    assert ev.exit_code == 0, ev.output
    want = json.loads(ev.stdout)
    for key in ("miou", "niou", "pd", "fa", "auc", "images", "targets"):
        assert row[key] == pytest.approx(want[key], abs=1e-12), key
    assert "Resolution: resized to 256x256" in (out / "report.md").read_text()
    bad_name = _invoke("--dataset", ds, "--split", "test", "--methods", "lcm", "--compat", "mshnet", "--out", tmp_path / "x")
    assert bad_name.exit_code == 2 and "--compat: expected one of dnanet" in bad_name.stderr


def test_seed_repeats_get_mean_and_std(data, tmp_path):
    from irstd.compare import SEED_FIELDS
    from irstd.train import TrainConfig, train

    _, ds, _ = data
    runs = {}
    for name, seed, epochs in (("s0", 0, 1), ("s1", 1, 1), ("s2", 2, 1), ("other", 3, 2)):
        cfg = TrainConfig(datasets=[str(ds)], model="cgrinet_test", epochs=epochs, batch_size=2, crop=32,
                          val_fraction=0, seed=seed, device="cpu", out=str(tmp_path / name))
        runs[name] = train(cfg).run_dir / "last.safetensors"
    specs = ",".join(f"cgrinet:{runs[n]}" for n in ("s0", "s1", "s2", "other"))
    out = tmp_path / "cmp"
    result = _invoke("--dataset", ds, "--split", "test", "--methods", specs, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (group,) = doc["seed_groups"]  # "other" trained longer: another experiment
    assert group["seeds"] == [0, 1, 2] and group["n"] == 3 and group["label"] == "cgrinet_test × 3 seeds"
    rows = {r["method"]: r for r in doc["methods"]}
    assert group["methods"] == [m for m, r in rows.items() if "other" not in r["info"]["weights"]]
    for f in SEED_FIELDS:
        values = [rows[m][f] for m in group["methods"]]
        assert group["mean"][f] == pytest.approx(np.mean(values), abs=1e-12)
        assert group["std"][f] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert "cgrinet_test × 3 seeds (seeds 0, 1, 2), mean ± std: IoU" in " ".join(result.stderr.split())
    assert "## Repeats with other seeds (mean ± std)" in (out / "report.md").read_text()
