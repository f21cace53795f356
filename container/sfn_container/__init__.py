"""The model container code."""
