"""What an evaluation computes and on how many samples: shared by every evaluator and its callers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalSettings:
    """What to compute and on how many samples."""

    # Generated images per caption set (training templates, and held-out templates).
    num_samples: int = 10000
    # Real training images the statistics are computed from.
    real_samples: int = 10000
    # Also score phrasings never used in training.
    heldout: bool = True
    # Inception FID/KID/IS (slow on a CPU: ~0.15 s per image).
    inception: bool = False
    # k of the k-NN manifolds for precision/recall.
    pr_k: int = 3
    kid_subset_size: int = 1000
    kid_subsets: int = 100
    batch_size: int = 500
    seed: int = 0
