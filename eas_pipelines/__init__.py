"""Deployment pipelines on Dagster (DESIGN part 5, a client; SPEC §17).

Retrain → store → deploy (all at once or blue-green) → smoke-test → keep or roll back, as
Dagster assets, checks, jobs, schedules and sensors built from one YAML declaration per
service. The core is driven only through ``eas_core.sdk`` (the control API) and HTTP calls to
the gateway; nothing here imports the controller, the gateway or the instance runtime.

    declaration  the pydantic model of a pipeline file     factory  declaration → definitions
    assets       <service>/model, <service>/deployment      checks   the smoke asset check
    jobs         retrain_and_deploy, deploy, rollback, release, and the schedule
    sensors      new_model, health, run_failure             resources  the installation
    rollout      all_at_once / blue_green over the SDK      smoke    requests and judging
    json_path    JSON paths into answers (declaration and smoke use it)
    stores       installation | local | oss model stores   definitions  the code location
    settings     EAS_PIPELINES_*: the only reader of the environment
"""
