"""File I/O shared by every part of himbench: validated matte/image reading and atomic writes."""

from himbench.io.atomic import atomic_write_bytes, atomic_write_text
from himbench.io.images import (
    InputError,
    decode_alpha,
    decode_image,
    encode_alpha_png,
    encode_png,
    png_params,
    read_alpha,
    read_image,
    write_alpha_png,
)

__all__ = [
    "InputError",
    "atomic_write_bytes",
    "atomic_write_text",
    "decode_alpha",
    "decode_image",
    "encode_alpha_png",
    "encode_png",
    "png_params",
    "read_alpha",
    "read_image",
    "write_alpha_png",
]
