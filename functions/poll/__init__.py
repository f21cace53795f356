"""The poll Lambda."""
