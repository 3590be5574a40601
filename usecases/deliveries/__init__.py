"""Deliveries: how many minutes until an order arrives? The third bundled use case, and the
first regression: one entity (an order), a few numeric and categorical inputs known when the
order is placed, a skewed target (most orders 20-40 minutes, a tail past an hour), no simulator.

contract.yaml  the table, its keys, label and features     card.yaml  requirements and gates
data/          the orders `mlops run` replays (and how they were made)
expectations/deliveries/orders.json  the validation suite
"""

from pathlib import Path

from mlops.contracts.tabular import tabular_use_case

USE_CASE = tabular_use_case(Path(__file__).parent)
