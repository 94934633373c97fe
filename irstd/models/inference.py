"""Inference on images of any size: pad to a multiple of the model's stride, run it, crop back."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from irstd.errors import InputError

__all__ = ["predict", "predict_batch", "pad_to_multiple"]


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def pad_to_multiple(x: torch.Tensor, fill: torch.Tensor, multiple: int = 32) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` at the bottom and right to multiples of ``multiple``.

    The padding takes the value ``fill`` (broadcast to ``(1, C, 1, 1)``); with the model's
    ``input_mean`` the padded area is zero after the input normalisation, as in BasicIRSTD.
    """
    b, c, h, w = x.shape
    hp = -(-h // multiple) * multiple
    wp = -(-w // multiple) * multiple
    if (hp, wp) == (h, w):
        return x
    out = fill.to(device=x.device, dtype=x.dtype).reshape(1, -1, 1, 1).expand(b, c, hp, wp).clone()
    out[:, :, :h, :w] = x
    return out


def predict_batch(model: nn.Module, x: torch.Tensor, device: str | torch.device | None = None) -> torch.Tensor:
    """Probabilities for a batch of images of any size.

    Parameters
    ----------
    model : SegmentationNet
        The model; it is run in eval mode under ``torch.inference_mode`` and put back in its
        previous mode afterwards. With ``device`` given the model is moved there (in place).
    x : Tensor
        ``(B, H, W)`` or ``(B, C, H, W)`` float images in [0, 1] (``irstd.intensity.to_float``); one
        channel is replicated when the model takes ``in_chans > 1``.
    device : str or torch.device, optional
        Where to run; the model's device by default.

    Returns
    -------
    Tensor
        ``(B, 1, H, W)`` float32 probabilities (sigmoid of the final logits) on the run device.

    Notes
    -----
    Images are padded at the bottom and right to multiples of the model's ``stride`` with its
    ``input_mean`` (zero after normalisation, the BasicIRSTD convention) and the output is
    cropped back, so callers never deal with the encoder's stride.
    """
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise InputError(f"image batch: expected (B, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")
    in_chans = model.input_mean.shape[1]
    if x.shape[1] == 1 and in_chans > 1:
        x = x.expand(-1, in_chans, -1, -1)
    if x.shape[1] != in_chans:
        raise InputError(f"image batch: model takes {in_chans} channels, got {x.shape[1]}")
    if device is not None:
        model.to(device)
    run_device = _model_device(model)
    h, w = x.shape[-2:]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            x = x.to(device=run_device, dtype=torch.float32)
            logits = model(pad_to_multiple(x, model.input_mean, getattr(model, "stride", 32)))
            if isinstance(logits, (list, tuple)):
                logits = logits[-1]
            return torch.sigmoid(logits[:, :, :h, :w]).float()
    finally:
        model.train(was_training)


def predict(model: nn.Module, image: np.ndarray, device: str | torch.device | None = None) -> np.ndarray:
    """Target probability map of one grey image.

    Parameters
    ----------
    model : SegmentationNet
    image : ndarray
        2-D float image in [0, 1] (``irstd.intensity.to_float`` output), any height and width.
    device : str or torch.device, optional
        Where to run; the model's device by default (the model is moved when given).

    Returns
    -------
    ndarray
        float32 probabilities, same shape as ``image``. A target mask is ``probs > 0.5``.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"image: expected a 2-D grey image, got shape {image.shape}")
    if image.size == 0:
        raise InputError("image: empty image")
    if not np.issubdtype(image.dtype, np.floating):
        raise InputError(f"image: expected a float image in [0, 1] (irstd.intensity.to_float), got dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise InputError("image: contains NaN or infinite values")
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return predict_batch(model, x, device=device)[0, 0].cpu().numpy()
