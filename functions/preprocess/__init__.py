"""The preprocess Lambda."""
