"""frozen-slt: strong lottery tickets in partially frozen random networks (plain PyTorch)."""

__version__ = "0.1.0"
