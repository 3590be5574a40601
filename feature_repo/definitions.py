"""The active use case's entities, feature views and feature service, for Feast's CLI.

The definitions themselves live with the use case (usecases/<name>/features.py); the platform
applies them in code, so `feast apply` is only needed when you drive Feast by hand.
"""

from mlops.config.settings import get_settings
from mlops.contracts.usecase import active_use_case
from mlops.stores.feature_store import feast_objects

_settings = get_settings()
# Feast's CLI collects module-level objects.
globals().update({obj.name: obj for obj in feast_objects(_settings, active_use_case(_settings))})
