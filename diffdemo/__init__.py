"""diffdemo: diffusion models as priors for image inverse problems, as an interactive laboratory."""

__version__ = "0.1.0"
