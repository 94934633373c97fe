"""The ``irstd`` command line (installed as ``irstd.cli``)."""
