"""Read shards back for training and learning: PyTorch, JAX and plain NumPy iteration."""

from .arrays import arrays

__all__ = ["arrays"]
