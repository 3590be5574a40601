"""The service answers each task kind's prediction in its own shape, and the infra check reads
back exactly those answers: a number, or every class's probability and the most probable class."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.contracts.tasks import Binary, Multiclass, Regression
from serving.request_models import PREDICTED_CLASS, answered_prediction, prediction_answer

QUEUES = Multiclass(("billing", "delivery", "fraud"))


@pytest.mark.parametrize(
    ("task", "prediction"),
    [
        (Binary(), np.float32(0.25)),
        (Regression(), np.float32(-3.5)),
        (QUEUES, np.array([0.2, 0.7, 0.1], dtype=np.float32)),
    ],
)
def test_an_answer_reads_back_as_the_prediction(task, prediction) -> None:
    answer = prediction_answer(task, "score", prediction)
    assert answered_prediction(task, "score", answer) == pytest.approx(
        np.atleast_1d(prediction).tolist()
    )


def test_a_multiclass_answer_names_each_class_and_the_most_probable() -> None:
    answer = prediction_answer(QUEUES, "queue_probabilities", np.array([0.2, 0.7, 0.1]))
    assert answer == {
        "queue_probabilities": {"billing": 0.2, "delivery": 0.7, "fraud": 0.1},
        PREDICTED_CLASS: "delivery",
    }


@pytest.mark.parametrize(
    ("task", "answer"),
    [
        (Binary(), {"score": 1.5}),
        (Binary(), {"score": "0.5"}),
        (Regression(), {"score": float("nan")}),
        (Regression("count:poisson"), {"score": -1.0}),
        (QUEUES, {"score": {"billing": 0.5, "delivery": 0.4, "fraud": 0.3},
                  PREDICTED_CLASS: "billing"}),  # sums to 1.2
        (QUEUES, {"score": {"delivery": 0.7, "billing": 0.2, "fraud": 0.1},
                  PREDICTED_CLASS: "delivery"}),  # not the classes' order
        (QUEUES, {"score": {"billing": 0.2, "delivery": 0.7, "fraud": 0.1},
                  PREDICTED_CLASS: "billing"}),  # not the most probable
        (QUEUES, {"score": 0.7}),
        (Binary(), ["not", "a", "dict"]),
    ],
)  # fmt: skip
def test_an_answer_that_is_not_the_kinds_prediction_reads_as_none(task, answer) -> None:
    assert answered_prediction(task, "score", answer) is None
