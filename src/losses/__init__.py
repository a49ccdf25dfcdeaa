"""Adversarial losses and regularizers: pure functions of tensors, never calling `.backward()`."""
