"""One settings object for the whole platform, read from `MLOPS_*` environment variables."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Files a checkout keeps at its root and the code reads (GX suites under expectations/,
# prefect.yaml). A wheel has no root of its own: it ships them under mlops/_project/
# (pyproject.toml, force-include), so an installed package reads those copies.
_PACKAGED = Path(__file__).resolve().parents[1] / "_project"
DATA_ROOT = _PACKAGED if _PACKAGED.is_dir() else PROJECT_ROOT

# Every library here phones home unless told not to; a template people run locally must not.
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "FEAST_USAGE": "False",
    "RAY_USAGE_STATS_ENABLED": "0",
}
# For `mlflow server`: the platform queues no MLflow server jobs (GenAI scoring); without this
# each server starts half a dozen job-runner processes (~20 s of CPU) it never uses.
MLFLOW_SERVER_JOBS_OFF = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}

# The platform's own loggers (one per package), routed by `mlops.config.runtime.setup()`.
PLATFORM_LOGGERS = (
    "entrypoints",
    "mlops",
    "ingestion",
    "models",
    "serving",
    "monitoring",
    "flows",
    "usecases",
)


class ServingSettings(BaseModel):
    """The prediction service's operating limits (`MLOPS_SERVING__<NAME>`). Its latency SLO is
    a requirement, so it lives in the use case's card instead."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=3000, ge=1, le=65535)
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Server processes (default: one per core).",
    )
    # `registry`: follow @champion (or serve `model_version` if set: the infra check pins its
    # candidate so); `bento`: the model packaged with the bento (`mlops package`).
    model_source: Literal["registry", "bento"] = "registry"
    model_version: str | None = None
    poll_seconds: float = Field(
        default=10, gt=0, description="How often to look for a new @champion."
    )
    max_batch: int = Field(default=256, ge=1, description="Largest /predict_batch request.")
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_concurrency: int = Field(
        default=256, ge=1, description="Requests in flight (across workers); then 429."
    )
    batch_max_size: int = Field(
        default=64, ge=1, description="Most requests scored in one call (micro-batching)."
    )
    batch_wait_ms: float = Field(
        default=0,
        ge=0,
        description="How long a batch that is not full waits for more requests (0: it takes "
        "what queued while the previous batch was scored).",
    )
    timeout_seconds: float = Field(default=2, gt=0, description="Then 504.")
    log_flush_seconds: float = Field(default=0.5, gt=0, description="Prediction log batching.")
    prediction_log_dir: Path | None = Field(default=None, description="Default: HOME/predictions.")
    startup_timeout_seconds: float = Field(default=120, gt=0)
    access_log: bool = Field(default=False, description="A log line per request (slower).")
    infra_check: bool = Field(
        default=True, description="Load a would-be champion in a real service before promoting."
    )
    infra_check_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Where the infra check's service listens (default: any free port).",
    )
    infra_check_p99_ms: float | None = Field(
        default=None,
        gt=0,
        description="The latency SLO the infra check judges a candidate against (default: the "
        "card's serving SLO); the model's added time must fit in it less the service's own "
        "floor. See docs/serving.md, 'The infra check: load-independent latency'.",
    )
    infra_check_reference_floor_ms: float = Field(
        default=0.5,
        gt=0,
        description="What the SLO's machine pays in CPU for the service's bare route (/floor) "
        "per request: 0.5 ms on this project's 2-core reference machine, quiet. The infra "
        "check scales the SLO by how much more the bare route costs in its own run, so a "
        "slower or contended machine does not fail a model a faster one passes.",
    )
    shadow: bool = Field(
        default=True,
        description="Score the registry's @challenger in the shadow of the served model "
        "(serving/shadow.py); off, a service follows the champion alone.",
    )
    shadow_collect_ms: float = Field(
        default=20,
        ge=0,
        description="How long shadow scoring collects requests before scoring them in one call.",
    )
    shadow_queue_batches: int = Field(
        default=64,
        ge=1,
        description="Scored batches waiting for the @challenger's shadow scoring; beyond it, "
        "shadow scoring is skipped and counted, never an answer delayed.",
    )
    fault_challenger_spin_ms: float = Field(
        default=0,
        ge=0,
        description="Drill hook, never for production: this many milliseconds of CPU time "
        "burnt in every call scoring with the @challenger (in the shadow or as a canary), so "
        "a slow challenger fills the shadow queue or breaks a canary's latency guardrail.",
    )
    fault_challenger_errors: bool = Field(
        default=False,
        description="Drill hook, never for production: every call scoring with the "
        "@challenger fails, as a broken model would.",
    )
    fault_scoring_repeats: int = Field(
        default=0,
        ge=0,
        description="Drill and test hook, never for production: score every call this many "
        "extra times, a model that many times as costly whose cost grows on a slow machine "
        "as a real model's does. The infra check's tests use it to prove a slow model is "
        "rejected.",
    )


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ANY_HOST = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def client_host(host: str) -> str:
    """The address a client on this machine uses for a server bound to `host`."""
    return "127.0.0.1" if host in ANY_HOST else host


class UiSettings(BaseModel):
    """Where the Prefect and MLflow servers (`mlops up`, `make mlflow-ui` etc.) and Evidently's
    UI listen (`MLOPS_UI__<NAME>`), so the links the platform writes open them. Bound beyond
    loopback, `mlops up` requires the credentials of `AuthSettings`."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    prefect_port: int = Field(default=4200, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    evidently_port: int = Field(default=8000, ge=1, le=65535)
    mlflow_allowed_hosts: str | None = Field(
        default=None,
        description="Host headers the MLflow server accepts besides localhost "
        "(`--allowed-hosts`, comma-separated), e.g. its public name behind a proxy.",
    )

    @property
    def prefect_url(self) -> str:
        return f"http://{client_host(self.host)}:{self.prefect_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{client_host(self.host)}:{self.mlflow_port}"

    @property
    def evidently_url(self) -> str:
        return f"http://{client_host(self.host)}:{self.evidently_port}"


class AuthSettings(BaseModel):
    """Credentials of the server profile's services (`MLOPS_AUTH__<NAME>`), from the environment
    or `.env` only. A service uses its credential whenever it is set, and `mlops up` refuses to
    bind a service beyond loopback without it. Masked wherever settings are printed."""

    model_config = ConfigDict(extra="forbid")

    # Prefect's basic auth, `user:password`: the server's PREFECT_SERVER_API_AUTH_STRING and
    # every client's (CLI, worker, flows) PREFECT_API_AUTH_STRING.
    prefect_auth_string: SecretStr | None = None
    # MLflow's `basic-auth` app: the admin account it is created with (the password: 12
    # characters or more), and its session key (unset: generated once under MLOPS_HOME).
    mlflow_admin_user: str = "admin"
    mlflow_admin_password: SecretStr | None = None
    mlflow_secret_key: SecretStr | None = None
    # How long MLflow's server remembers a verified credential (its `auth_cache_ttl_seconds`;
    # 0: never). Off, every request checks the password's scrypt hash again: 0.16 s of the
    # server's CPU a request on this 2-core machine, 245 s in one server-profile run.
    mlflow_auth_cache_seconds: int = Field(default=60, ge=0)
    # Bearer token for the prediction service's routes (/livez, /readyz, /metrics stay open).
    serving_api_key: SecretStr | None = None


# The Prefect client, against a Prefect API at a URL: its own retries of one request and how
# long a try waits for an answer (seconds). Prefect's defaults (5 retries with doubling waits
# once the server was reached, 60 s a try) kept a flow run going for minutes after the server
# died; with these a call gives up within about 30 s when refused (about two minutes when
# hung), the run fails and the CLI names the Prefect API and its URL. Four retries, not fewer:
# a busy SQLite-backed server answers 503 while its database is locked, and two retries (6 s
# of waiting) failed a flow run beside the whole test suite.
PREFECT_CLIENT_BOUNDS = {"PREFECT_CLIENT_MAX_RETRIES": "4", "PREFECT_API_REQUEST_TIMEOUT": "20"}
# One MLflow HTTP request: how often it is retried, how long it waits for a byte (seconds).
MLFLOW_HTTP_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


class Settings(BaseSettings):
    """Where state lives and which services to use. Validated once, at start."""

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    profile: Literal["local", "server"] = "local"
    home: Path = Field(
        # A checkout keeps its state beside the code; an installed wheel, where it is run.
        default_factory=lambda: (Path.cwd() if DATA_ROOT == _PACKAGED else PROJECT_ROOT) / ".mlops",
        description="All state lives below this.",
    )
    use_case: str = Field(default="adclick", description="Package name under usecases/.")
    use_cases_root: Path = Field(
        default=DATA_ROOT,
        description="Where use cases live: `usecases/<name>/` and `expectations/<name>/` below "
        "it. The checkout by default; `mlops init-use-case` writes there.",
    )
    card: Path | None = Field(
        default=None,
        description="The use case's requirements card from another reviewed file (a staging "
        "environment's rollout, a drill's); default: the card in the use case's package.",
    )

    # Server profile (PostgreSQL, Redis, Prefect server, MLflow server); unused by `local`.
    # The defaults fit the machine this template is developed on (see .env.example). Secrets
    # (they may carry passwords): masked wherever settings are printed or logged; read the
    # value with `.get_secret_value()` where a client is built.
    postgres_dsn: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="A PostgreSQL role that may create databases; the platform's own "
        "databases (`<database_prefix>_prefect`, `_mlflow`, `_feast`, `_predictions`) are "
        "created beside it.",
    )
    database_prefix: str = Field(default="mlops", pattern=r"^[a-z][a-z0-9_]{0,40}$")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Default (server profile): the servers `mlops up` starts, at `ui.host` and its ports.
    prefect_api_url: str | None = None
    mlflow_tracking_uri: str | None = None

    serving: ServingSettings = ServingSettings()
    ui: UiSettings = UiSettings()
    auth: AuthSettings = AuthSettings()

    # Where the heavy stages run: `local`, in this process (DuckDB joins, one XGBoost); `ray`,
    # on Ray (Feast's Ray offline store and compute engine, Ray Train, Prefect's Ray task
    # runner). See docs/scale-out.md.
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(
        default=None,
        description="A Ray cluster to connect to (`ray://head:10001`, or `auto` on a cluster's "
        "node); unset: a local Ray started in this process with the caps below.",
    )
    ray_num_cpus: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="A local Ray's CPUs."
    )
    ray_object_store_mb: int = Field(
        default=1024,
        ge=80,
        description="A local Ray's shared-memory object store; it spills to disk beyond this "
        "(uncapped, Ray takes 30% of the machine's memory).",
    )
    ray_train_workers: int = Field(
        default=1,
        ge=1,
        description="Ray Train's data-parallel XGBoost workers, a CPU each; Ray Data needs a "
        "CPU left to feed them (on 2 cores: 1).",
    )

    # How far past this machine's clock a batch's manifest may say it closed (producers'
    # clocks drift); a later close is refused: it would let future events in and move the
    # offline store's watermark, the default end of the next training window.
    max_close_ahead_minutes: float = Field(
        default=60, ge=0, description="A batch closing later than now plus this is refused."
    )

    prefect_startup_timeout_seconds: int = 90
    # Where `mlops deploy`'s alert automation sends monitoring alerts: a Prefect notification
    # block, `<block type>/<name>` (e.g. `slack-webhook/ops`); unset, it only records them.
    alert_notification_block: str | None = None

    log_level: str = "INFO"
    # Libraries' logs, warnings and progress bars on the terminal too (`mlops --verbose`); by
    # default they go to the log files under `logs/` only.
    verbose: bool = False

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if self.profile == "server":
            self.prefect_api_url = self.prefect_api_url or f"{self.ui.prefect_url}/api"
            self.mlflow_tracking_uri = self.mlflow_tracking_uri or self.ui.mlflow_url
        for name in ("postgres_dsn", "redis_url"):
            url = urlsplit(getattr(self, name).get_secret_value())
            if not url.scheme or not url.hostname:
                raise ValueError(f"MLOPS_{name.upper()} is not a URL (scheme://host...)")
        return self

    def database_url(
        self, purpose: Literal["prefect", "mlflow", "feast", "predictions"], driver: str
    ) -> str:
        """The URL of the platform's database for `purpose`, on the server `postgres_dsn`
        names, with the SQLAlchemy `driver` (`asyncpg`, `psycopg2`, `psycopg`)."""
        url = urlsplit(self.postgres_dsn.get_secret_value())
        return urlunsplit(
            (f"postgresql+{driver}", url.netloc, f"/{self.database_name(purpose)}", url.query, "")
        )

    def database_name(self, purpose: str) -> str:
        return f"{self.database_prefix}_{purpose}"

    # One folder per kind of state, so deleting `home` resets the platform.
    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def offline_dir(self) -> Path:
        return self.home / "offline"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def gx_root(self) -> Path:
        """GX's project root: GX keeps its context, results and data docs in `gx/` below it."""
        return self.home

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking and registry: the server's URL, or an absolute SQLite file (a relative
        one would depend on the working directory)."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str | None:
        """Where new experiments keep artifacts; a tracking server decides for itself (it
        proxies them: `--artifacts-destination`)."""
        if self.mlflow_tracking_uri and self.mlflow_tracking_uri.startswith(("http:", "https:")):
            return None
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def predictions_dir(self) -> Path:
        """The prediction log the service appends to and monitoring reads."""
        return self.serving.prediction_log_dir or self.home / "predictions"

    @property
    def batch_predictions_dir(self) -> Path:
        """Batch prediction's scores, a folder per model version and run."""
        return self.home / "batch_predictions"

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring's reports, verdict history and Evidently workspace."""
        return self.home / "monitoring"

    @property
    def ray_dir(self) -> Path:
        """The Ray engine's files: Feast's staging, Ray Train's checkpoints."""
        return self.home / "ray"

    @property
    def bentoml_home(self) -> Path:
        """BentoML's model and bento stores."""
        return self.home / "bentoml"

    def library_environment(self) -> dict[str, str]:
        """Environment the libraries read at import time (Prefect, MLflow, GX, Feast)."""
        env = dict(TELEMETRY_OFF)
        env["PREFECT_HOME"] = str(self.prefect_home)
        env["BENTOML_HOME"] = str(self.bentoml_home)
        env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # serving loads models: no bars
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = str(
            self.prefect_startup_timeout_seconds
        )
        # Stage modules log with the standard library; Prefect forwards these to the run's logs.
        env["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(PLATFORM_LOGGERS)
        # One line per record on the console; everything, tracebacks too, in logs/prefect.log.
        env["PREFECT_LOGGING_SETTINGS_PATH"] = str(Path(__file__).with_name("prefect_logging.yml"))
        # What reaches the terminal: the CLI's own story unless `verbose`; the rest is in logs/.
        env["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "INFO" if self.verbose else "CRITICAL"
        env["MLFLOW_CONFIGURE_LOGGING"] = "false"  # MLflow's logs go where the root's go
        # Against a tracking server MLflow prints "View run ... at" on stdout when a run ends:
        # it would break `--json`'s one object on stdout (the platform prints its own links).
        env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        if not self.verbose:
            env["TQDM_DISABLE"] = "1"  # Feast's materialization progress bars
        if self.prefect_api_url:
            env["PREFECT_API_URL"] = self.prefect_api_url
            env.update(PREFECT_CLIENT_BOUNDS)
        if self.auth.prefect_auth_string:
            env["PREFECT_API_AUTH_STRING"] = self.auth.prefect_auth_string.get_secret_value()
        if self.auth.mlflow_admin_password and self.mlflow_tracking_uri:
            env["MLFLOW_TRACKING_USERNAME"] = self.auth.mlflow_admin_user
            env["MLFLOW_TRACKING_PASSWORD"] = self.auth.mlflow_admin_password.get_secret_value()
        # MLflow's HTTP client alone retries 7 times with a 120 s timeout (a refused connection
        # surfaced after 4 min): one call gives up fast here; the platform asks again a few
        # times (mlflow_runs.MLFLOW_RETRIES, Prefect's task retries) and then says who did not
        # answer. 20 s without a byte is a hung server, not a long upload.
        env.update(MLFLOW_HTTP_BOUNDS)
        return env

    def environment(self) -> dict[str, str]:
        """These settings as `MLOPS_*` variables, secrets included: what a process this one
        starts (a worker, a server) needs to see the same platform."""
        env: dict[str, str] = {}

        def flatten(prefix: str, model: BaseModel) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                key = f"{prefix}{name.upper()}"
                if isinstance(value, BaseModel):
                    flatten(f"{key}__", value)
                elif isinstance(value, SecretStr):
                    env[key] = value.get_secret_value()
                elif value is not None:
                    env[key] = str(value)

        flatten("MLOPS_", self)
        return env

    def apply(self) -> Settings:
        """Create the state folders and export the library environment. Call before importing
        Prefect: it reads its settings once, on import."""
        for folder in (
            self.landing_dir,
            self.quarantine_dir,
            self.offline_dir,
            self.mlflow_dir,
            self.logs_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        for key, value in self.library_environment().items():
            # Explicit user choices (e.g. a PREFECT_API_URL already exported) win.
            os.environ.setdefault(key, value)
        os.environ["MLOPS_HOME"] = str(self.home)
        # BentoML's model and bento stores belong to this home, like all other state.
        os.environ["BENTOML_HOME"] = str(self.bentoml_home)
        return self


@cache
def get_settings() -> Settings:
    """The process-wide settings. Tests clear the cache with `get_settings.cache_clear()`."""
    return Settings()
