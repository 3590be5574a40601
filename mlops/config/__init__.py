"""Configuration: the one settings object, the error types, logging and process set-up."""
