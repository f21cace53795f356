"""The validate Lambda."""
