"""The train Lambda."""
