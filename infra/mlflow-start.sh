#!/bin/sh
# Starts `mlflow server` with MLflow's `basic-auth` app; arguments go to `mlflow server`.
# The backend store comes from MLFLOW_BACKEND_STORE_URI (read by `mlflow server` itself), so
# no password is on the command line. The auth app reads its user store from an ini file
# (MLFLOW_AUTH_CONFIG_PATH); it is written here from the environment: the users live in
# MLFLOW_AUTH_DATABASE_URI, by default the backend store's database (MLflow keeps them in
# tables and a migration history of their own). The admin account is created on first start
# from MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD (MLflow 3.16.1+ ships no
# default password, and wants at least 12 characters); MLFLOW_FLASK_SERVER_SECRET_KEY signs
# its sessions.
set -eu
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY}"

config="${TMPDIR:-/tmp}/mlflow-basic-auth.ini"
umask 077
# configparser reads `%` as interpolation: double it (URL-encoded passwords contain it).
database_uri=$(printf '%s' "${MLFLOW_AUTH_DATABASE_URI:-$MLFLOW_BACKEND_STORE_URI}" | sed 's/%/%%/g')
{
    echo "[mlflow]"
    echo "default_permission = READ"
    echo "database_uri = $database_uri"
    echo "admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
    echo "authorization_function = mlflow.server.auth:authenticate_request_basic_auth"
    # A verified credential is remembered this long (0: never): checking its scrypt hash costs
    # ~0.16 s of CPU, on every request without the cache.
    echo "auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}"
} >"$config"
export MLFLOW_AUTH_CONFIG_PATH="$config"
# The platform queues no MLflow server jobs (GenAI scoring); without this each server starts
# half a dozen job-runner processes it never uses.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

exec mlflow server --app-name basic-auth "$@"
