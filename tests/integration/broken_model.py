"""A model that passes /ping and fails every real request: a trained model's archive with its
booster swapped for one trained on a single feature (the metadata still names them all, so
the server decodes the rows and XGBoost refuses them: a 500)."""

from __future__ import annotations

import io
import tarfile


def broken_archive(good: bytes) -> bytes:
    import numpy as np
    import xgboost as xgb

    x = np.arange(20, dtype=float).reshape(-1, 1)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=x[:, 0] > 9), 2)
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(good), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            if member.name.endswith("model.ubj"):
                raw = bytes(booster.save_raw("ubj"))
                member.size = len(raw)
                dst.addfile(member, io.BytesIO(raw))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return out.getvalue()
