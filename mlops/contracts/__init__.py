"""Contracts: what a use case is (card, tables, model inputs, batch format) and its metrics."""
