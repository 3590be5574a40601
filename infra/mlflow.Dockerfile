# The MLflow tracking server of the server profile: the official image plus what it lacks for
# this setup, installed at build time (never at start): the PostgreSQL driver of the backend
# store and of the basic-auth user store, and Flask-WTF, which MLflow's `basic-auth` app imports
# (mlflow's `auth` extra). Build from the repository root:
#   docker build -f infra/mlflow.Dockerfile -t mlops-mlflow:3.17.2 .
FROM ghcr.io/mlflow/mlflow:v3.17.2

RUN pip install --no-cache-dir psycopg2-binary==2.9.13 Flask-WTF==1.3.0

COPY infra/mlflow-start.sh /usr/local/bin/mlflow-start

# A non-root user; the artifact directory is its own (a named volume mounted there inherits it).
RUN groupadd --gid 10001 mlflow \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp mlflow \
    && mkdir -p /mlartifacts \
    && chown 10001:10001 /mlartifacts \
    && chmod 0755 /usr/local/bin/mlflow-start
USER 10001:10001

ENTRYPOINT ["mlflow-start"]
