"""The metrics engine: the community definitions of mIoU, nIoU, Pd, Fa, plus ROC/PR curves."""
