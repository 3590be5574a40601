"""The serving floor: the least a server can do per request with the same model.

A bare Starlette app; each request's encoded features come from a Python dict keyed by the
request's values, then `Booster.inplace_predict`. No validation, no feature store, no log.
Started by benchmarks/serving.py with FLOOR_MODEL (a UBJ booster) and FLOOR_FEATURES (JSON:
the requests and their encoded rows, in order).
"""

from __future__ import annotations

import json
import os

import numpy as np
import xgboost as xgb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

booster = xgb.Booster(model_file=os.environ["FLOOR_MODEL"])
booster.set_param({"nthread": 1})
best = booster.attr("best_iteration")
ROUNDS = (0, int(best) + 1) if best is not None else (0, 0)
_table = json.loads(open(os.environ["FLOOR_FEATURES"]).read())  # noqa: SIM115
FEATURES = {
    tuple(sorted(request.items())): np.array([row], dtype=np.float32)
    for request, row in zip(_table["requests"], _table["rows"], strict=True)
}


async def predict(request: Request) -> Response:
    key = tuple(sorted(json.loads(await request.body()).items()))
    score = booster.inplace_predict(FEATURES[key], iteration_range=ROUNDS)[0]
    return JSONResponse({"score": float(score)})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
