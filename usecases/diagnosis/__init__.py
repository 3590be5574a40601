"""Diagnosis: is a breast mass malignant? The second bundled use case, and the shape most forks
have: one entity (a patient), 30 numeric measurements, a Yes/No label, no simulator.

contract.yaml  the table, its keys, label and features     card.yaml  requirements and gates
data/          the examinations `mlops run` replays (and how they were made)
expectations/diagnosis/examinations.json  the validation suite
Written by `mlops init-use-case` from data/examinations.csv, then reviewed (docs/make-it-yours.md).
"""

from pathlib import Path

from mlops.contracts.tabular import tabular_use_case

USE_CASE = tabular_use_case(Path(__file__).parent)
