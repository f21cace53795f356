"""The invoke Lambda."""
