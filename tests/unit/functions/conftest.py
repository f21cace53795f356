"""Fixtures for the function tests; they live in fn_support.py with the helpers."""

from fn_support import aws_env, context, moto

__all__ = ["aws_env", "context", "moto"]
