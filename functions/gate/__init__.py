"""The gate Lambda."""
