"""The deployment lock: one deployment per endpoint at a time."""
