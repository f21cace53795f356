"""SageMaker's container contract: every path under ``$OPT_ML`` (default ``/opt/ml``).

The same code runs on SageMaker (``OPT_ML`` unset) and as a local process in the local
cloud, which points ``OPT_ML`` at a work directory. Paths are resolved when asked for, not
at import time, so a test can set ``OPT_ML`` per run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OptMl:
    root: Path

    @classmethod
    def from_env(cls) -> OptMl:
        return cls(Path(os.environ.get("OPT_ML", "/opt/ml")))

    # --- processing jobs -------------------------------------------------------------
    def processing_input(self, name: str) -> Path:
        return self.root / "processing" / "input" / name

    def processing_output(self, name: str) -> Path:
        return self.root / "processing" / "output" / name

    @property
    def processing_resource_config(self) -> Path:
        """The hosts of a processing job (SageMaker writes it under ``config/``)."""
        return self.root / "config" / "resourceconfig.json"

    # --- training jobs ---------------------------------------------------------------
    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        """The hosts of a training job (``current_host``, ``hosts``)."""
        return self.root / "input" / "config" / "resourceconfig.json"

    @property
    def checkpoints(self) -> Path:
        """Synced with the job's CheckpointConfig S3 prefix (Spot training)."""
        return self.root / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"
