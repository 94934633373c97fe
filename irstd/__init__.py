"""irstd: infrared small target detection.

CgriNet (PyTorch), the classical baselines LCM, IPI and NRAM, and one metrics engine with the
community's definitions, behind the ``irstd`` command line.

What a Python user needs is importable from here (loaded on first use, so ``import irstd`` stays
light): :func:`read_image`, :func:`get_method` (``method.run(image)``; options as keywords or one
:class:`MethodOptions`), :func:`find_targets`,
:class:`Evaluator`, :func:`open_dataset` and :class:`TrainConfig` (training:
``irstd.train.train(config)``). Example::

    import irstd

    image = irstd.read_image("frame.png")
    out = irstd.get_method("cgrinet").run(image)          # scores, mask, seconds
    for target in irstd.find_targets(out.mask, out.scores):
        print(target["centroid"], target["peak"])
"""

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS = {
    "read_image": "irstd.io",
    "get_method": "irstd.methods",
    "MethodOptions": "irstd.methods",
    "find_targets": "irstd.targets",
    "Evaluator": "irstd.metrics",
    "open_dataset": "irstd.data",
    "TrainConfig": "irstd.train",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'irstd' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
