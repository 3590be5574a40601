"""Step 6 of ML system design: the prediction service (BentoML), its checks and its packaging."""

from serving.packaging import build_bento, import_model
from serving.process import free_port, start_service
from serving.traffic import replay, requests_for

__all__ = ["build_bento", "free_port", "import_model", "replay", "requests_for", "start_service"]
