"""Online serving (BentoML service over Feast online features): lands with issue 4."""
