"""The pipeline's Lambda functions: one folder each, a thin handler.py plus logic.py."""
