"""The active use case's Feast objects, for Feast's CLI: the objects the platform applies.

The definitions themselves live with the use case (usecases/<name>/features.py); the platform
applies them in code at every ingest (mlops.stores.feature_store.open_store), so after an
ingest `feast plan` finds nothing to change. See feature_store.yaml for how to run the CLI.
"""

from feast import FeatureStore

from mlops.config.settings import get_settings
from mlops.contracts.usecase import active_use_case
from mlops.stores.feature_store import feast_objects, repo_config

_settings = get_settings()
_use_case = active_use_case(_settings)
# The registry the CLI reads too (tests/unit/mlops/test_feature_repo.py): sources it holds
# unchanged keep their recorded timestamps, as they do when the platform applies them.
_registry = FeatureStore(config=repo_config(_settings, _use_case)).registry
# Feast's CLI collects module-level objects.
globals().update({obj.name: obj for obj in feast_objects(_settings, _use_case, _registry)})
