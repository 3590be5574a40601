"""Tickets: which support queue should a ticket go to? The fourth bundled use case, and the
first multiclass: one entity (a ticket), what is known when it is opened, four queues of very
unequal sizes (billing 43%, delivery 39%, technical 14%, fraud 5%), no simulator.

contract.yaml  the table, its keys, label and features     card.yaml  requirements and gates
data/          the tickets `mlops run` replays (and how they were made)
expectations/tickets/tickets.json  the validation suite
Drafted by `mlops init-use-case` from data/tickets.csv, then reviewed (docs/make-it-yours.md).
"""

from pathlib import Path

from mlops.contracts.tabular import tabular_use_case

USE_CASE = tabular_use_case(Path(__file__).parent)
