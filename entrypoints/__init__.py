"""The front door: the `mlops` command line, the lifecycle run, the service supervisor and the
use-case scaffold. Everything here calls flows and the stages' public interfaces; nothing below
imports it.

    cli/                 the `mlops` commands, a module per concern
    lifecycle            `mlops run`: the closed loop, day by day
    lifecycle_story      what a run tells (its scenario, days and result), read by the page
    lifecycle_page       the page that shows a run (templates/lifecycle.html)
    supervisor           `mlops up`, `down`, `status`: the server profile's services
    scaffold             `mlops init-use-case`: the suite, contract.yaml, and writing the files
    scaffold_inference   what a sample of a table says: the contract and the sample's profile
    scaffold_card        the requirements card drafted from that profile
"""
