"""irstd: infrared small target detection.

CgriNet (PyTorch), the classical baselines LCM, IPI and NRAM, and one metrics engine with the
community's definitions, behind the ``irstd`` command line.
"""

__version__ = "0.1.0"
