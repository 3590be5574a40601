"""`mlops up` keeps secrets off command lines (which every local user can read with `ps`) and
writes its records and logs for their owner only."""

from __future__ import annotations

import configparser
import stat

from pydantic import SecretStr

from entrypoints.supervisor import services
from mlops.config.runtime import PrivateFileHandler, open_private
from mlops.config.settings import Settings

PASSWORD = "not-on-any-command-line"


def test_no_service_gets_the_database_password_on_its_command_line(tmp_path) -> None:
    settings = Settings(
        home=tmp_path,
        profile="server",
        postgres_dsn=SecretStr(f"postgresql://mlops:{PASSWORD}@127.0.0.1:5432/postgres"),
    )
    started = {s.name: s for s in services(settings)}
    assert not [name for name, s in started.items() if PASSWORD in " ".join(s.command)]
    # It reaches the servers through their environment instead.
    assert PASSWORD in started["mlflow"].env["MLFLOW_BACKEND_STORE_URI"]
    assert PASSWORD in started["prefect"].env["PREFECT_API_DATABASE_CONNECTION_URL"]


def test_records_and_logs_are_readable_by_their_owner_only(tmp_path) -> None:
    shared = tmp_path / "was-shared.log"
    shared.write_text("before\n")
    shared.chmod(0o644)
    with open_private(shared) as log:  # an existing file is made private too
        log.write(b"after\n")
    with open_private(tmp_path / "record.json", "w") as record:
        record.write("{}")
    handler = PrivateFileHandler(tmp_path / "handled.log", encoding="utf-8")
    handler.stream.write("line\n")
    handler.close()
    for name in ("was-shared.log", "record.json", "handled.log"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert shared.read_text() == "before\nafter\n"
    assert (tmp_path / "record.json").read_text() == "{}"


def test_mlflows_auth_config_remembers_a_verified_credential(tmp_path) -> None:
    """Checking a password's scrypt hash costs ~0.16 s of the server's CPU: not every request.
    Read the way MLflow reads it (mlflow/server/auth/config.py: a `[mlflow]` section)."""
    settings = Settings(
        home=tmp_path,
        profile="server",
        auth={"mlflow_admin_password": SecretStr("twelve-chars-or-more")},
    )
    mlflow = {s.name: s for s in services(settings)}["mlflow"]
    config = configparser.ConfigParser()
    config.read(mlflow.env["MLFLOW_AUTH_CONFIG_PATH"])
    ttl = config.getint("mlflow", "auth_cache_ttl_seconds")
    assert ttl == settings.auth.mlflow_auth_cache_seconds > 0
