"""himbench: the toolkit and benchmark suite for human instance matting (HIM)."""

__all__ = ["__version__"]
__version__ = "0.1.0"
