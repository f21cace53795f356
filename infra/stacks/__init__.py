"""The stacks: the pipeline itself (always) and its CI/CD (when GitHub context is given)."""
