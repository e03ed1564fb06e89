"""Training: phase 1 (reconstruction VAE) and phase 2 (entropy model), and export."""
from .loop import TrainConfig, train  # noqa: F401
