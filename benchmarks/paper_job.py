"""Issue 19's GPU job: train the paper model on SIRST in one command, choose by the written rule.

    python benchmarks/paper_job.py DATA/SIRST OUT [--total 500] [--recipe NAME:OPTIONS ...]
                                   [--val-seeds 0,1] [--model cgrinet] [--device cuda]

Every recipe is trained once per validation seed (``irstd train --split dnanet_50_50/train --seed 0
--val-seed S``: the same initial weights, a different 21 held-out training ids per seed), all side
by side on one GPU, in three phases inside ``--total`` seconds:

1. **calibration**: every run for 5 epochs (validation at epochs 4 and 5) in a scratch folder, to
   measure its seconds per epoch, per validation, and its start-up, while the others run beside it
   (tried again with ``--step eager`` when a run fails);
2. **training**: every run again from scratch, its ``--epochs`` fitted to the time left (so that the
   poly schedule reaches its end) and ``--val-every`` to about 25 validations; a run still going at
   the deadline is stopped by SIGINT (``last.safetensors`` is written every 90 s, so one exists);
3. **choice** (the rule in docs/model_card.md, "The paper model", written before any run): a run's
   score is the mean validation IoU over its validations in the last quarter of the epochs it
   trained, a recipe's the mean over its seeds; the highest wins, the first recipe named on a tie
   within 0.5 points. The candidate is the winning recipe's seed-0 run's ``last.safetensors`` (the
   EMA weights when the recipe has ``--ema``), written in float16.

On the GPU machine (data/SIRST a copy of the dataset, carried; the whole command within 10 minutes)::

    python3 -m pip install -q --no-deps --no-build-isolation -e . && python3 benchmarks/paper_job.py data/SIRST $OUT

OUT receives at most 8 files, none over 15 MiB (what the GPU machine gives back): the candidate as
``cgrinet_paper.safetensors.part-aa``, ``-ab``, ... (join with ``cat``), and ``runs.tar.gz`` holding
every run's ``config.yaml``, ``ids.json``, ``metrics.csv``, ``train.log``, its held-out ids
(``NAME.val.txt``), the calibration logs and ``decision.json``. Whether the candidate ships is
decided afterwards on a CPU, by the rule, with ``irstd evaluate --weights FILE --dataset SIRST
--split-file NAME.val.txt`` on the seed-0 held-out ids; test figures come after that decision.

Afterwards, on any machine (the rule's remaining steps)::

    cat OUT/cgrinet_paper.safetensors.part-* > cgrinet_paper.safetensors && tar -xzf OUT/runs.tar.gz -C runs/paper
    irstd evaluate --weights cgrinet_paper.safetensors --dataset DATA/SIRST --split-file runs/paper/RECIPE-v0.val.txt
    # shipped only if IoU >= 74.04 and Pd >= 85.71: cp cgrinet_paper.safetensors irstd/weights/; then the test
    # figures (--split dnanet_50_50/test --skip-errors; MDvsFA --split test) and the distillation runs A and B
    # with --teacher paper (docs/model_card.md; about 9 s per epoch on 2 CPU cores without --teacher-tta)

The field's heavy networks (issue 27: DNANet, ISNet, ISTDU-Net, UIU-Net, MTU-Net; ``--net``) train
beside the paper runs with BasicIRSTD's recipe, one run each (validation seed 0), take no part in
the paper model's choice, and are evaluated on the test split at the end: their figures, and the
float16 weights of those under 10 MB (DNANet, ISNet, ISTDU-Net), are in ``runs.tar.gz``.

``--quick`` runs the same phases with ``cgrinet_test`` (and ACM as the field's net) on the CPU in
about four minutes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Written with the rule (docs/model_card.md), before any run.
RECIPES = (
    "r128:--lr 5e-4 --batch-size 12 --crop 128 --scale-range 0.75,1.5 --ema 0.999",
    "r256:--lr 5e-4 --batch-size 16 --crop 256 --scale-range 0.75,1.5 --ema 0.999",
)
QUICK_RECIPES = ("q32:--lr 1e-3 --batch-size 4 --crop 32", "q64:--lr 1e-3 --batch-size 4 --crop 64")
# The field's heavy networks (issue 27), trained beside the paper runs with BasicIRSTD's recipe (Adam
# lr 5e-4 without weight decay, 256² crops, batch 16, each net's own loss), validation seed 0; not
# part of the paper model's choice. Each is evaluated on the test split afterwards (figures only).
NETS = tuple(f"{n}:--lr 5e-4 --weight-decay 0 --batch-size 16 --crop 256"
             for n in ("dnanet", "isnet", "istdunet", "uiunet", "mtunet"))
QUICK_NETS = ("acm:--lr 1e-3 --weight-decay 0 --batch-size 4 --crop 64",)
NET_FILE_MB = 10  # a net's float16 weights come back (inside runs.tar.gz) when at most this size
CALIBRATION_EPOCHS = 5  # epoch 1 holds the graph capture; 2 and 3 train; 4 and 5 train and validate
VALIDATIONS = 25  # about this many validations per run
TIE = 0.005  # recipes closer than this (IoU as a fraction) count as a tie: the first named wins
PART_BYTES = 15 * 2**20
STATE_INTERVAL = 90  # seconds between writes of last.safetensors (and the state), so a stopped run has one
SMALL_FILES = ("config.yaml", "ids.json", "metrics.csv", "train.log")


@dataclass
class Run:
    recipe: str
    options: list[str]
    val_seed: int
    folder: Path
    epochs: int = 0
    val_every: int = 1
    extra: list[str] = field(default_factory=list)
    #: A field network's registry name (``--net``); None for the paper model's runs (``--model``).
    net: str | None = None

    @property
    def name(self) -> str:
        return f"net-{self.net}" if self.net else f"{self.recipe}-v{self.val_seed}"


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` (none when the run wrote nothing)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def fit_epochs(rows: list[dict[str, str]], wall: float, budget: float) -> tuple[int, int]:
    """Epochs and validation interval that fill ``budget`` seconds, from a calibration's rows.

    ``rows`` are the calibration's ``metrics.csv`` rows (epochs 2 and 3 without validation, 4 and 5
    with it) and ``wall`` its whole duration, so that the start-up (imports, data, graph capture,
    final save) is ``wall`` minus the epochs' time beyond the steady state. 15 % of the time is kept
    for the difference between calibration and training (on 2 CPU cores, 4 runs: +7 to +13 %, the
    validations of a trained model taking longer than those of a new one).
    """
    times = [float(r["time_s"]) for r in rows]
    if len(times) < CALIBRATION_EPOCHS:
        raise ValueError(f"calibration wrote {len(times)} of {CALIBRATION_EPOCHS} epochs")
    train_s = statistics.mean(times[1:3])
    val_s = max(0.0, statistics.mean(times[3:5]) - train_s)
    startup = max(0.0, wall - CALIBRATION_EPOCHS * train_s - 2 * val_s)
    usable = 0.85 * (budget - startup)
    epochs = max(1, int(usable / train_s))
    val_every = max(1, round(epochs / VALIDATIONS))
    epochs = max(1, int(usable / (train_s + val_s / val_every)))
    return epochs, val_every


def run_score(rows: list[dict[str, str]]) -> float | None:
    """Mean validation IoU over the validations in the last quarter of the epochs a run trained
    (None: none there)."""
    epochs = int(rows[-1]["epoch"]) if rows else 0
    values = [float(r["val_miou"]) for r in rows if r["val_miou"] and int(r["epoch"]) > 0.75 * epochs]
    return statistics.mean(values) if values else None


def choose(scores: dict[str, list[float | None]]) -> str | None:
    """The recipe with the highest mean run score; the first named among those within ``TIE`` of it.

    A recipe with a run that has no score (it failed or never validated) is out.
    """
    means = {r: statistics.mean(s) for r, s in scores.items() if s and all(v is not None for v in s)}
    if not means:
        return None
    top = max(means.values())
    return next(r for r in scores if r in means and means[r] >= top - TIE)


def train_command(args, run: Run, epochs: int, val_every: int, out: Path) -> list[str]:
    return [sys.executable, "-m", "irstd.cli.main", "train", "--dataset", str(args.data),
            "--split", "dnanet_50_50/train", "--model", run.net or args.model, "--device", args.device,
            *(["--amp"] if args.device == "cuda" else []), "--seed", "0", "--val-seed", str(run.val_seed),
            "--epochs", str(epochs), "--val-every", str(val_every), "--state-interval", str(STATE_INTERVAL),
            *run.options, *run.extra, "--out", str(out)]


def side_by_side(commands: list[tuple[list[str], Path]], deadline: float, grace: float,
                 threads: int) -> list[tuple[int, float]]:
    """Run every command at once (stdout and stderr to its log, ``threads`` OpenMP threads each);
    SIGINT those still running at ``deadline`` (a run then saves and stops), kill those still
    running ``grace`` seconds later. Returns (exit code, wall s) each."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    procs = []
    for command, log in commands:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            procs.append(subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env))
    ended: dict[int, float] = {}
    signalled = False
    while len(ended) < len(procs):
        now = time.monotonic()
        for i, p in enumerate(procs):
            if i not in ended and p.poll() is not None:
                ended[i] = now - start
        if not signalled and now >= deadline:
            for i, p in enumerate(procs):
                if i not in ended:
                    p.send_signal(signal.SIGINT)
            signalled = True
        if signalled and now >= deadline + grace:
            for i, p in enumerate(procs):
                if i not in ended:
                    p.kill()
        time.sleep(0.5)
    return [(p.wait(), ended[i]) for i, p in enumerate(procs)]


def write_parts(path: Path, prefix: Path) -> list[Path]:
    """Split ``path`` into files of at most ``PART_BYTES`` named ``<prefix>.part-aa``, ``-ab``, ..."""
    parts = []
    with open(path, "rb") as fh:
        while chunk := fh.read(PART_BYTES):
            letters = "abcdefghijklmnopqrstuvwxyz"
            n = len(parts)
            part = prefix.with_name(f"{prefix.name}.part-{letters[n // 26]}{letters[n % 26]}")
            part.write_bytes(chunk)
            parts.append(part)
    return parts


def log(message: str, t0: float) -> None:
    print(f"[{time.monotonic() - t0:6.1f} s] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the SIRST dataset folder")
    parser.add_argument("out", type=Path, help="folder for the parts and runs.tar.gz (at most 8 files)")
    parser.add_argument("--total", type=float, default=500, help="seconds for the whole job (default 500)")
    parser.add_argument("--recipe", action="append", help="NAME:OPTIONS (repeat; default: the two of the rule)")
    parser.add_argument("--val-seeds", default="0,1")
    parser.add_argument("--model", default="cgrinet")
    parser.add_argument("--net", action="append",
                        help="NAME:OPTIONS, a field network trained beside the paper runs and evaluated on the test "
                             "split (repeat; default: DNANet, ISNet, ISTDU-Net, UIU-Net, MTU-Net; --net none: no net)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", type=Path, help="scratch folder for the runs (default: a new temporary one)")
    parser.add_argument("--quick", action="store_true", help="cgrinet_test on the CPU, small crops, --total 240")
    args = parser.parse_args()
    if args.quick:
        args.model, args.device, args.total = "cgrinet_test", "cpu", min(args.total, 240)
        args.recipe = args.recipe or list(QUICK_RECIPES)
        args.net = args.net or list(QUICK_NETS)
    nets = [n for n in (args.net or NETS) if n != "none"]
    if not (args.data / "splits" / "dnanet_50_50" / "train.txt").is_file():
        parser.error(f"{args.data}: no splits/dnanet_50_50/train.txt (not a SIRST folder)")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out}: not empty (the job writes its parts and runs.tar.gz into an empty folder)")
    t0 = time.monotonic()
    end = t0 + args.total
    threads = 2 if args.device == "cuda" else 1  # on a CPU the runs share its cores
    # kept at the end: half for runs stopped at the deadline to save, half for the float16 file and archive
    reserve = min(60.0, args.total / 6) + (0 if args.quick else 15) * len(nets)  # + the nets' test evaluations
    args.out.mkdir(parents=True, exist_ok=True)
    args.work = Path(tempfile.mkdtemp(prefix="paper_job-", dir=args.work))
    runs = [Run(name, options.split(), int(seed), args.work / f"{name}-v{seed}")
            for name, options in (r.split(":", 1) for r in (args.recipe or RECIPES))
            for seed in args.val_seeds.split(",")]
    runs += [Run(name, options.split(), 0, args.work / f"net-{name}", net=name)
             for name, options in (n.split(":", 1) if ":" in n else (n, "") for n in nets)]
    decision: dict = {"nets": nets, "recipes": args.recipe or list(RECIPES), "val_seeds": args.val_seeds, "model": args.model,
                      "device": args.device, "total_s": args.total, "runs": {}}

    # 1. calibration (once more with --step eager when the first try fails)
    for extra in ([], ["--step", "eager"]):
        for run in runs:
            run.extra = extra
        commands = [(train_command(args, run, CALIBRATION_EPOCHS, 4, run.folder.with_suffix(".cal")),
                     run.folder.with_suffix(".cal.log")) for run in runs]
        for run in runs:
            shutil.rmtree(run.folder.with_suffix(".cal"), ignore_errors=True)
        log(f"calibration {' '.join(extra)}: {len(runs)} runs side by side", t0)
        results = side_by_side(commands, time.monotonic() + args.total / 4, reserve / 2, threads)
        if all(code == 0 for code, _ in results):
            break
        log(f"calibration exit codes {[c for c, _ in results]} (logs in runs.tar.gz)", t0)
    else:
        return finish(args, runs, decision, None, t0)
    budget = end - time.monotonic() - reserve
    for run, (_, wall) in zip(runs, results):
        rows = read_metrics(run.folder.with_suffix(".cal") / "metrics.csv")
        run.epochs, run.val_every = fit_epochs(rows, wall, budget)
        decision["runs"][run.name] = {"calibration": rows, "calibration_wall_s": round(wall, 1),
                                      "epochs": run.epochs, "val_every": run.val_every, "extra": run.extra}
        epoch_s = statistics.mean(float(r["time_s"]) for r in rows[1:3])  # what fit_epochs calls an epoch
        log(f"{run.name}: epoch {epoch_s:.2f} s, calibration {wall:.0f} s -> --epochs {run.epochs} --val-every {run.val_every}", t0)

    # 2. training
    commands = [(train_command(args, run, run.epochs, run.val_every, run.folder), run.folder.with_suffix(".log")) for run in runs]
    results = side_by_side(commands, time.monotonic() + budget, reserve / 2, threads)
    # 3. the choice
    scores: dict[str, list[float | None]] = {}
    for run, (code, wall) in zip(runs, results):
        rows = read_metrics(run.folder / "metrics.csv")
        done = int(rows[-1]["epoch"]) if rows else 0
        score = run_score(rows)
        if run.net is None:  # the field's nets take no part in the paper model's choice
            scores.setdefault(run.recipe, []).append(score)
        decision["runs"][run.name].update(exit=code, wall_s=round(wall, 1), epochs_done=done,
                                          complete=done == run.epochs, score=score)
        log(f"{run.name}: exit {code}, {done}/{run.epochs} epochs in {wall:.0f} s, score {score}", t0)
    chosen = choose(scores)
    decision.update(scores=scores, chosen=chosen)
    evaluate_nets(args, [r for r in runs if r.net], decision, t0)
    return finish(args, runs, decision, chosen, t0)


def evaluate_nets(args, runs: list[Run], decision: dict, t0: float) -> None:
    """Each field network's ``best.safetensors`` (by validation IoU) on the test split, when the
    dataset has one: ``irstd evaluate --json`` into ``decision["runs"][NAME]["test"]``, and its
    float16 file (``NAME.safetensors``) when at most :data:`NET_FILE_MB`."""
    if not (args.data / "splits" / "dnanet_50_50" / "test.txt").is_file():
        return
    from irstd.models.registry import get_spec

    for run in runs:
        best = run.folder / "best.safetensors"
        if not best.exists():
            continue
        cmd = [sys.executable, "-m", "irstd.cli.main", "evaluate", "--dataset", str(args.data), "--split",
               "dnanet_50_50/test", "--method", f"{get_spec(run.net).family}:{best}", "--device", args.device,
               "--skip-errors", "--out", str(run.folder.with_suffix(".test")), "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        figures = json.loads(done.stdout) if done.stdout.strip().startswith("{") else None
        decision["runs"][run.name]["test"] = {"exit": done.returncode, "metrics": figures, "command": cmd[2:]}
        f16 = run.folder / f"{run.net}.safetensors"
        subprocess.run([sys.executable, "-m", "irstd.models", str(best), str(f16), "--float16"], check=False)
        if f16.exists() and f16.stat().st_size <= NET_FILE_MB * 2**20:
            decision["runs"][run.name]["weights"] = f16.name
        log(f"{run.name}: test exit {done.returncode}, IoU {figures and figures.get('miou')}", t0)


def finish(args, runs: list[Run], decision: dict, chosen: str | None, t0: float) -> int:
    """Write the candidate in float16 parts and ``runs.tar.gz`` into OUT; 0 when a candidate exists."""
    candidate = next((r for r in runs if r.recipe == chosen and r.val_seed == 0), None)
    source = candidate.folder / "last.safetensors" if candidate else None
    if source is not None and source.exists():
        f16 = args.work / "cgrinet_paper.safetensors"
        subprocess.run([sys.executable, "-m", "irstd.models", str(source), str(f16), "--float16"], check=True)
        parts = write_parts(f16, args.out / "cgrinet_paper.safetensors")
        decision["candidate"] = {"run": candidate.name, "file": "last.safetensors", "parts": [p.name for p in parts]}
    else:
        decision["candidate"] = None
    (args.work / "decision.json").write_text(json.dumps(decision, indent=1))
    with tarfile.open(args.out / "runs.tar.gz", "w:gz") as tar:
        tar.add(args.work / "decision.json", arcname="decision.json")
        for run in runs:
            if (run.folder / "ids.json").exists():  # the held-out ids, for irstd evaluate --split-file
                ids = json.loads((run.folder / "ids.json").read_text())["val"]["ids"]
                run.folder.with_suffix(".val.txt").write_text("".join(i.split("/", 1)[-1] + "\n" for i in ids))
                tar.add(run.folder.with_suffix(".val.txt"), arcname=f"{run.name}.val.txt")
            for folder in (run.folder, run.folder.with_suffix(".cal")):
                for name in SMALL_FILES:
                    if (folder / name).exists():
                        tar.add(folder / name, arcname=f"{folder.name}/{name}")
            for suffix in (".cal.log", ".log"):
                if run.folder.with_suffix(suffix).exists():
                    tar.add(run.folder.with_suffix(suffix), arcname=f"{run.name}{suffix}")
            shipped = decision.get("runs", {}).get(run.name, {}).get("weights")
            if shipped:  # a field network's float16 weights, small enough to come back
                tar.add(run.folder / shipped, arcname=f"{run.name}/{shipped}")
    log(f"chosen: {chosen}; candidate: {decision['candidate']}", t0)
    return 0 if decision["candidate"] else 1


if __name__ == "__main__":
    sys.exit(main())
