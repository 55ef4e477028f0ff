"""Shared library: data, models, bilevel methods and the training loop."""
