"""Inference without training: the EMA generator + text side (`Sampler`), its bundle file, the model card,
the sampling operations shared by `src.generate` and `src.demo`, and the demo page."""
