"""PixelGAN: text-conditioned image GANs on PyTorch Lightning and Hydra."""

from src.utils.resolvers import register as _register_resolvers

# Configs may use ${ensure_dir:...} and ${if_positive:...}: resolvable wherever a src module is imported.
_register_resolvers()
