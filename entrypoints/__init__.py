"""The front door: the `mlops` command line, the lifecycle run, the service supervisor and the
use-case scaffold. Everything here calls flows and the stages' public interfaces; nothing below
imports it."""
