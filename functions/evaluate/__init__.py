"""The evaluate Lambda."""
