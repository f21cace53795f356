"""The trigger Lambda."""
