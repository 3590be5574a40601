-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d), as the
-- superuser. The platform's databases for MLOPS_DATABASE_PREFIX=mlops (compose.yaml); the
-- platform would also create them itself on first use (mlops/stores/databases.py), but the Prefect
-- server and MLflow start before any platform process does.
CREATE DATABASE mlops_prefect;
CREATE DATABASE mlops_mlflow;
CREATE DATABASE mlops_feast;

-- Prefect's server searches with trigram indexes; the extension must exist in its database.
\connect mlops_prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
