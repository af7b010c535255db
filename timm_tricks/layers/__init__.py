"""Reusable building blocks, one concept per file."""
from .pyconv import PyConv2d, create_pyconv
