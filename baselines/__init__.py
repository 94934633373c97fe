"""Classical baselines LCM, IPI and NRAM (installed as ``irstd.baselines``)."""
