"""Step 6 of ML system design: the prediction service (BentoML), its checks and its packaging.

service.py              the BentoML service (`bentoml serve serving.service:PredictionService`)
routes.py               its HTTP routes: the prediction routes on bare ASGI, /model, the docs
request_models.py       the routes' pydantic models, built from the use case
openapi_schema.py       the OpenAPI documents and the service's page at /
auth.py                 the API key (required beyond loopback)
http_limits.py          limits on request bodies and event times
batching.py             micro-batching: requests in flight scored together
scoring.py              requests scored: features, the use case's model inputs, the booster
online_store_reader.py  the online store read without Feast's registry
store_health.py         the online store probed in the background, for readiness
model_loading.py        a model version loaded from MLflow or a bento, ready to score
champion.py             which model is served: the @champion, followed and hot-swapped
shadow.py               the @challenger scored beside it on live requests, off the answer's path
canary.py               the @challenger answering a share of users, watched by guardrails
prediction_logger.py    every answer logged, for monitoring
throttled_log.py        failures logged once per cause, then counted
fault_injection.py      fault drills: scoring slowed down, a challenger slowed or failing
infra_check.py          the infra check before a promotion
process.py              the service as a `bentoml serve` process
traffic.py              events replayed as live traffic
packaging.py            a model version into BentoML's store, and a bento
"""

from serving.packaging import build_bento, import_model
from serving.process import free_port, start_service
from serving.traffic import replay, requests_for

__all__ = ["build_bento", "free_port", "import_model", "replay", "requests_for", "start_service"]
