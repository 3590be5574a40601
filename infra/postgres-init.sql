-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d).
CREATE DATABASE prefect;
CREATE DATABASE mlflow;
CREATE DATABASE feast;
