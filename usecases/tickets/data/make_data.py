"""How tickets.csv was made (run once; the CSV is committed, so nothing runs this).

A shop's support tickets, simulated: 14 days of tickets, each with what is known when it is
opened (the channel, the customer's plan and history, the last order, a failed payment, the
app's age) and the queue it turned out to belong to: billing, delivery, technical or fraud, of
very unequal sizes. Which queue depends on combinations (a new account placing a large order
over the phone is fraud's; an old app on chat is technical's), so a linear model misses some of
it. Seeded; not a teaching set.
"""

from pathlib import Path

import numpy as np
import pandas as pd

DAYS = 14
TICKETS_PER_DAY = 200
START = pd.Timestamp("2026-01-01", tz="UTC")
QUEUES = ["billing", "delivery", "technical", "fraud"]


def main() -> None:
    rng = np.random.default_rng(31)
    rows = DAYS * TICKETS_PER_DAY
    seconds = np.sort(rng.uniform(0, DAYS * 86_400, rows))
    opened_at = (START + pd.to_timedelta(seconds.round(), unit="s")).to_series()

    channel = rng.choice(["email", "chat", "phone"], rows, p=[0.50, 0.35, 0.15])
    plan = rng.choice(["free", "plus", "business"], rows, p=[0.55, 0.35, 0.10])
    account_age = np.round(rng.lognormal(5.0, 1.3, rows)).astype(int)  # days; median ~150
    orders = rng.poisson(1.5, rows)
    ordered = orders > 0
    since_order = np.where(ordered, np.round(rng.exponential(8, rows), 1), np.nan)
    order_value = np.where(ordered, np.round(rng.lognormal(4.0, 0.9, rows), 2), np.nan)
    payment_failed = (rng.random(rows) < 0.08).astype(int)
    app_age = rng.integers(0, 180, rows)  # days since the customer's app version shipped

    recent = np.nan_to_num(since_order, nan=99) < 5
    large_new = (account_age < 90) & (np.nan_to_num(order_value) > 60)
    logits = np.column_stack(
        [
            0.6 + 3.0 * payment_failed + 1.0 * (plan != "free"),  # billing
            -0.2 + 2.5 * recent + 0.3 * np.minimum(orders, 6),  # delivery
            -1.5 + 3.0 * (app_age > 90) * (channel == "chat") + 1.0 * (app_age > 90),  # technical
            -3.5 + 5.0 * large_new + 1.5 * large_new * (channel == "phone"),  # fraud
        ]
    )
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    queue = [QUEUES[rng.choice(4, p=p)] for p in probabilities]

    table = pd.DataFrame(
        {
            "ticket_id": [f"T{i:06d}" for i in rng.permutation(900_000)[:rows] + 100_000],
            "opened_at": opened_at.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
            "queue": queue,
            "channel": channel,
            "plan": plan,
            "account_age_days": account_age,
            "orders_last_30d": orders,
            "days_since_last_order": since_order,
            "last_order_value": order_value,
            "payment_failed_last_7d": payment_failed,
            "app_version_age_days": app_age,
        }
    )
    table.to_csv(Path(__file__).with_name("tickets.csv"), index=False)


if __name__ == "__main__":
    main()
