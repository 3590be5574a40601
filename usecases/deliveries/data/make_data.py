"""How orders.csv was made (run once; the CSV is committed, so nothing runs this).

A courier service's delivery times, simulated: 14 days of orders, each with what is known when
it is placed (distance, items, the kitchen's queue, the courier's vehicle, the weather, the
hour) and how long it took to arrive, in minutes. The target is skewed, as delivery times are:
most orders take 20 to 40 minutes, a few take over an hour (a courier held up, a wrong
address), and that tail depends on nothing the order says. Seeded; not a teaching set.
"""

from pathlib import Path

import numpy as np
import pandas as pd

DAYS = 14
ORDERS_PER_DAY = 200
START = pd.Timestamp("2026-01-01", tz="UTC")
SPEED_KMH = {"bike": 15.0, "scooter": 22.0, "car": 28.0}
# Weather slows what is open to it: a bike in snow crawls, a car hardly notices rain.
WEATHER_SLOWDOWN = {
    ("bike", "rain"): 0.65, ("bike", "snow"): 0.35,
    ("scooter", "rain"): 0.75, ("scooter", "snow"): 0.5,
    ("car", "rain"): 0.95, ("car", "snow"): 0.8,
}  # fmt: skip


def main() -> None:
    rng = np.random.default_rng(29)
    rows = DAYS * ORDERS_PER_DAY
    # Orders cluster at lunch and dinner (UTC hours of a city on UTC).
    hours = np.concatenate(
        [rng.normal(12.5, 1.2, rows // 2), rng.normal(19.5, 1.5, rows - rows // 2)]
    )
    days = rng.integers(0, DAYS, rows)
    seconds = np.clip(hours, 0, 23.99) * 3600 + days * 86_400
    ordered_at = (START + pd.to_timedelta(np.sort(seconds).round(), unit="s")).to_series()
    hour = ordered_at.dt.hour.to_numpy()
    peak = ((hour >= 12) & (hour <= 13)) | ((hour >= 19) & (hour <= 20))

    distance = np.clip(rng.lognormal(1.0, 0.6, rows), 0.2, 25).round(2)
    items = np.minimum(1 + rng.poisson(2.0, rows), 15)
    queue = rng.poisson(np.where(peak, 6.0, 2.0))
    vehicle = rng.choice(list(SPEED_KMH), rows, p=[0.45, 0.35, 0.20])
    weather = rng.choice(["clear", "rain", "snow"], rows, p=[0.70, 0.22, 0.08])

    # A kitchen works orders in parallel until it cannot: the queue costs little, then a lot.
    preparation = 6 + 1.0 * items + 0.4 * queue**2
    speed = np.array([SPEED_KMH[v] for v in vehicle])
    speed *= np.array(
        [WEATHER_SLOWDOWN.get((v, w), 1.0) for v, w in zip(vehicle, weather, strict=True)]
    )
    speed *= np.where(peak & (vehicle == "car"), 0.5, 1.0)  # cars sit in rush-hour traffic
    minutes = (preparation + 60 * distance / speed) * rng.lognormal(0, 0.15, rows)
    held_up = rng.random(rows) < 0.04
    minutes += np.where(held_up, rng.exponential(20, rows), 0.0)

    table = pd.DataFrame(
        {
            "order_id": [f"D{i:06d}" for i in rng.permutation(900_000)[:rows] + 100_000],
            "ordered_at": ordered_at.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
            "delivery_minutes": minutes.round(1),
            "distance_km": distance,
            "items": items,
            "kitchen_queue": queue,
            "order_hour": hour,
            "vehicle": vehicle,
            "weather": weather,
        }
    )
    table.to_csv(Path(__file__).with_name("orders.csv"), index=False)


if __name__ == "__main__":
    main()
