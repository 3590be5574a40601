"""Model development and evaluation (training, metrics, promotion gate): lands with issue 3."""
