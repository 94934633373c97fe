"""One optimisation step of training: eager, or captured once as a CUDA graph and replayed.

A step takes a batch ``(x, y)`` and the learning rate, runs forward, loss, backward and Adam, and
returns the loss as a 0-d tensor on the device (reading it is the caller's choice: it waits for
the GPU). :func:`make_step` chooses the kind:

- :class:`EagerStep`: plain PyTorch, on any device; float16 autocast with gradient scaling or
  bfloat16 autocast when asked, under DDP as well.
- :class:`GraphStep`: CUDA only, one process: the whole step (forward, loss, backward, Adam with
  ``capturable=True`` and a tensor learning rate) is recorded as one CUDA graph after a few eager
  warm-up steps, then replayed for every batch of the same shape. A step of a small network is
  bound by kernel launches; a replay launches them all at once.

With ``teacher`` given (:class:`irstd.train.distill.Teachers`), the teachers' mean probability on the
same batch is a second target: ``loss(outputs, y) + distill_weight · loss(outputs, p_teacher)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["EagerStep", "GraphStep", "STEP_MODES", "make_step", "step_loss", "train_step"]

#: Values of ``TrainConfig.step`` / ``--step``.
STEP_MODES = ("auto", "eager", "graph")


def step_loss(net: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, teacher=None, distill_weight: float = 0.0) -> torch.Tensor:
    """The training loss of one batch (forward included)."""
    outputs = net(x)
    loss = loss_fn(outputs, y)
    if teacher is not None and distill_weight > 0:
        with torch.no_grad():
            soft = teacher(x).float()
        loss = loss + distill_weight * loss_fn(outputs, soft)
    return loss


def _autocast(device_type: str, amp_dtype: torch.dtype | None, cache_enabled: bool = True):
    """Autocast to ``amp_dtype`` (None: off, float32)."""
    return torch.autocast(device_type=device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None,
                          cache_enabled=cache_enabled)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def prepare_optimizer(optimizer: torch.optim.Optimizer, captured: bool, device: torch.device) -> None:
    """Put an Adam optimizer (fresh or just loaded from a resume state) in the form a step needs.

    Captured: ``capturable=True``, the learning rate a 0-d tensor on ``device``, the ``step``
    counters on ``device``. Eager: ``capturable=False``, a float learning rate, counters on the CPU.
    A run may thus resume with the other kind of step.
    """
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["capturable"] = captured
        group["lr"] = torch.tensor(lr, device=device) if captured else lr
    for state in optimizer.state.values():
        if "step" in state and isinstance(state["step"], torch.Tensor):
            step = state["step"].to(torch.float32)
            state["step"] = step.to(device) if captured else step.cpu()


class EagerStep:
    """A plain PyTorch step (see the module docstring).

    Parameters
    ----------
    net : nn.Module
        The model in training mode (or its DDP wrapper).
    loss_fn : callable
        ``loss(outputs, target) -> scalar`` (:func:`irstd.losses.create_loss`).
    optimizer : torch.optim.Optimizer
    amp_dtype : torch.dtype, optional
        Autocast dtype (``torch.float16`` or ``torch.bfloat16``); None: float32.
    scaler : torch.amp.GradScaler, optional
        Gradient scaling (float16 autocast).
    teacher : callable, optional
        Soft targets ``teacher(x) -> probabilities``.
    distill_weight : float
    """

    kind = "eager"

    def __init__(self, net, loss_fn, optimizer, amp_dtype=None, scaler=None, teacher=None, distill_weight: float = 0.0):
        self.net, self.loss_fn, self.optimizer = net, loss_fn, optimizer
        self.amp_dtype, self.scaler = amp_dtype, scaler
        self.teacher, self.distill_weight = teacher, distill_weight

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        _set_lr(self.optimizer, lr)
        self.optimizer.zero_grad(set_to_none=True)
        with _autocast(x.device.type, self.amp_dtype):
            loss = step_loss(self.net, self.loss_fn, x, y, self.teacher, self.distill_weight)
        if self.scaler is not None and self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach()


class GraphStep:
    """The step recorded once as a CUDA graph and replayed (see the module docstring).

    The first ``warmup`` calls are ordinary eager steps on a side stream (they train on their
    batches like any other step, and let cuDNN and Adam allocate their state); the next call
    records the graph and replays it, and every later call copies its batch into the graph's
    static input tensors and replays. Batches must keep one shape (the training loop's batches
    do: fixed crop size and batch size, a last short batch excepted, which runs eagerly).

    ``optimizer`` must be Adam prepared by :func:`prepare_optimizer` with ``captured=True``.
    bfloat16 autocast is captured with its weight-cast cache off; float16 with gradient scaling
    cannot be captured (:func:`make_step` runs that eagerly).

    ``capture=False`` runs the same static-input body without recording it (for checking the
    bookkeeping on a machine without CUDA; ``optimizer`` then prepared with ``captured=False``).
    """

    kind = "graph"
    scaler = None  # bfloat16 or float32: nothing to scale

    def __init__(self, net, loss_fn, optimizer, amp_dtype=None, teacher=None, distill_weight: float = 0.0, warmup: int = 3,
                 capture: bool = True, warn: Callable[[str], None] | None = None):
        self.net, self.loss_fn, self.optimizer = net, loss_fn, optimizer
        self.eager = EagerStep(net, loss_fn, optimizer, amp_dtype, None, teacher, distill_weight)  # short batches, failures
        self.capture = capture
        self.warn = warn or (lambda message: None)
        self.failed = False
        self.amp_dtype = amp_dtype
        self.teacher, self.distill_weight = teacher, distill_weight
        self.warmup = warmup
        self.calls = 0
        self.graph = None
        self.static_x = self.static_y = self.static_loss = None

    def _body(self) -> torch.Tensor:
        with _autocast(self.static_x.device.type, self.amp_dtype, cache_enabled=False):
            loss = step_loss(self.net, self.loss_fn, self.static_x, self.static_y, self.teacher, self.distill_weight)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        _set_lr(self.optimizer, lr)
        if self.static_x is None:
            self.static_x, self.static_y = torch.empty_like(x), torch.empty_like(y)
        if self.failed or x.shape != self.static_x.shape:  # a last, shorter batch: eager, outside the graph
            return self._eager(x, y, lr)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        if self.graph is None:
            self.calls += 1
            if self.calls <= self.warmup:
                return self._side_stream_step()
            try:
                self._capture()
            except Exception as exc:  # noqa: BLE001 - an op that cannot be recorded: train on, eagerly
                self.failed = True
                self.graph = None
                self.optimizer.zero_grad(set_to_none=True)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.warn(f"could not capture the training step as a CUDA graph ({type(exc).__name__}: {first[:200]}); running it eagerly")
                return self._eager(x, y, lr)
        if not self.capture:
            self.optimizer.zero_grad(set_to_none=True)  # a replay overwrites the gradients
            self.static_loss = self._body()
            return self.static_loss
        self.graph.replay()
        return self.static_loss

    def _side_stream_step(self) -> torch.Tensor:
        if not self.capture:
            self.optimizer.zero_grad(set_to_none=True)
            return self._body().clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._body().clone()
        torch.cuda.current_stream().wait_stream(stream)
        return loss

    def _capture(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if not self.capture:
            self.graph = "not recorded"
            return
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_loss = self._body()
        self.graph = graph

    def _eager(self, x, y, lr: float) -> torch.Tensor:
        saved = {p: p.grad for p in self.net.parameters()}
        loss = self.eager(x, y, lr)
        if self.graph is not None:  # the graph writes into the gradient tensors it captured
            for p, g in saved.items():
                if g is not None:
                    g.copy_(p.grad)
                    p.grad = g
        return loss


def make_step(mode: str, net, loss_fn, optimizer, device: torch.device, *, world: int = 1, amp: bool = False,
              teacher=None, distill_weight: float = 0.0, warn: Callable[[str], None] | None = None,
              ) -> tuple[EagerStep | GraphStep, str | None]:
    """The training step for ``mode`` (``auto``, ``eager`` or ``graph``) on ``device``.

    ``auto`` captures on CUDA with one process and runs eagerly otherwise; ``graph`` asks for the
    capture and falls back to eager (with the reason returned) where it cannot be done: on the
    CPU, under DDP, or with float16 autocast (a GPU without bfloat16). A capture that fails
    (an operation CUDA graphs cannot record) also falls back, telling ``warn``.

    Returns
    -------
    step : EagerStep or GraphStep
    note : str or None
        Why a requested capture was not used (None when nothing to say).
    """
    if mode not in STEP_MODES:
        raise ValueError(f"step mode: expected one of {', '.join(STEP_MODES)}, got {mode!r}")
    amp_dtype = None
    if amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    reason = None
    if device.type != "cuda":
        reason = "CUDA graphs need a CUDA device"
    elif world > 1:
        reason = "the step is not captured under DDP"
    elif amp_dtype == torch.float16:
        reason = "float16 gradient scaling cannot be captured (this GPU has no bfloat16)"
    if mode == "eager" or reason is not None:
        prepare_optimizer(optimizer, False, device)
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        step = EagerStep(net, loss_fn, optimizer, amp_dtype, scaler if scaler.is_enabled() else None, teacher, distill_weight)
        return step, (f"--step graph: {reason}; running the step eagerly" if mode == "graph" and reason else None)
    prepare_optimizer(optimizer, True, device)
    return GraphStep(net, loss_fn, optimizer, amp_dtype, teacher, distill_weight, warn=warn), None


def train_step(net, loss_fn, optimizer, x, y, lr: float, scaler=None) -> float:
    """One eager optimisation step at learning rate ``lr``; returns the loss value.

    ``scaler`` (a ``torch.amp.GradScaler``, enabled only on CUDA) switches on float16 autocast.
    """
    use_amp = scaler is not None and scaler.is_enabled()
    step = EagerStep(net, loss_fn, optimizer, torch.float16 if use_amp else None, scaler if use_amp else None)
    return float(step(x, y, lr))
