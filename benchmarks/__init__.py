"""Performance measurements. Every figure is a ratio against a baseline measured in the
same run (these machines are noisy); nothing here is a pass/fail test."""
