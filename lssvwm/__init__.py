"""lssvwm: long-context state-space video world models in JAX."""

__version__ = "0.1.0"
