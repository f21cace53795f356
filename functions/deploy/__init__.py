"""The deploy Lambda."""
