"""The register Lambda."""
