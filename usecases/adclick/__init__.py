"""Ad-click prediction: the worked use case, in one bounded place.

contract.py   tables, keys, label, categories      card.yaml     requirements and gate thresholds
generator.py  the synthetic ad platform            features.py   features and their Feast objects
model.py      the model's inputs, evaluation slices and request schema
expectations/adclick/*.json  the reviewed validation suites
"""

from pathlib import Path

from mlops.contracts.usecase import Generator, UseCase
from usecases.adclick import contract
from usecases.adclick.features import (
    BASE_MARGIN,
    FEATURE_SERVICE,
    build_features,
    feast_definitions,
)
from usecases.adclick.generator import SCENARIOS, generate
from usecases.adclick.model import (
    CATEGORIES,
    REQUEST_COLUMNS,
    SCORE_NAME,
    ClickRequest,
    model_inputs,
    slices,
)

USE_CASE = UseCase(
    name="adclick",
    package_dir=Path(__file__).parent,
    tables=contract.TABLES,
    event_table=contract.IMPRESSIONS.name,
    entity_keys=("user_id", "ad_id"),
    request_columns=REQUEST_COLUMNS,
    label=contract.LABEL,
    oracle_column=contract.ORACLE,
    ceiling_column=contract.CEILING,
    feature_service=FEATURE_SERVICE,
    build_features=build_features,
    feast_definitions=feast_definitions,
    model_inputs=model_inputs,
    categories=CATEGORIES,
    slices=slices,
    request_model=ClickRequest,
    score_name=SCORE_NAME,
    base_margin=BASE_MARGIN,
    generator=Generator(
        generate, scenarios=SCENARIOS, story="concept-drift", events_per_day=10_000
    ),
)
