"""How examinations.csv was made (run once; the CSV is committed, so nothing runs this).

The Wisconsin diagnostic breast cancer data set (569 examinations, 30 numeric measurements of
cell nuclei, 212 malignant) as scikit-learn ships it, given what a production table has and the
original lacks: a patient id and the time of each examination (spread, seeded, over 14 days, so
the platform's time-split training and daily monitoring have days to work with). The label is
written Yes/No, as many real tables write it.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

DAYS = 14
START = pd.Timestamp("2026-01-01", tz="UTC")


def main() -> None:
    data = load_breast_cancer(as_frame=True)
    rng = np.random.default_rng(7)
    frame = data.frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    seconds = np.sort(rng.uniform(0, DAYS * 86_400, len(frame)))
    table = pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in rng.permutation(90_000)[: len(frame)] + 10_000],
            "examined_at": (START + pd.to_timedelta(seconds.round(), unit="s")).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "malignant": np.where(frame["target"] == 0, "Yes", "No"),
        }
    )
    for column in data.feature_names:
        table[column.replace(" ", "_")] = frame[column].round(5)
    table.to_csv(Path(__file__).with_name("examinations.csv"), index=False)


if __name__ == "__main__":
    main()
