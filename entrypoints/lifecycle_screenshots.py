"""`make screenshots`: the README's pictures, taken from a real run of `make run`'s story.

    python -m entrypoints.lifecycle_screenshots [--out docs/images] [--home DIR]

It runs `mlops run --reset --json` (the story `make run` tells) into a fresh MLOPS_HOME (a
temporary one, deleted afterwards, unless `--home` names one to keep; `--home DIR --again` draws
the page of the run DIR holds again, from its records, and takes the pictures of that run),
then takes, in headless Chromium (`make browser`):

    lifecycle-page.png          the page the run wrote (MLOPS_HOME/reports/lifecycle.html)
    evidently-dashboard.png     the monitoring project's dashboard in `evidently ui`
                                (`make evidently-ui`), every monitored day on it
    evidently-drift-report.png  the drift report of the first day the gate judged `retrain`

A few minutes (the run is most of it). Nothing here is mocked: the pictures are the run's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's mlops, evidently
RUN_TIMEOUT_SECONDS = 3600  # the story takes minutes; far longer on a busy machine
UI_START_SECONDS = 120
# Long enough for the pages' scripts (Evidently's dashboard asks its server for every panel).
VIRTUAL_TIME_MS = 20_000
WIDTH = 1400
RECORDS = "screenshots-run.json"  # in MLOPS_HOME: the run's records, for `--again`


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT / "docs" / "images")
    parser.add_argument("--home", type=Path, help="MLOPS_HOME to run in and keep")
    parser.add_argument(
        "--again", action="store_true", help="no new run: the pictures of --home's last one"
    )
    args = parser.parse_args(argv)
    if args.again and args.home is None:
        parser.error("--again takes the pictures of the run in --home: name it")
    home = args.home or Path(tempfile.mkdtemp(prefix="mlops-screenshots-"))
    records = home / RECORDS
    try:
        if args.again:  # the page drawn again, by this checkout's code, from the records
            result = json.loads(records.read_text(encoding="utf-8"))
            redraw_page(home, result)
        else:
            result = run_story(home)
            records.write_text(json.dumps(result, indent=1), encoding="utf-8")
        take_screenshots(result, home, args.out)
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    return 0


def run_story(home: Path) -> dict[str, Any]:
    """`mlops run --reset --json` in `home`: the run's records (progress goes to stderr)."""
    print(f"running `mlops run --reset` in {home} (a few minutes) ...", file=sys.stderr)
    done = subprocess.run(
        [str(BIN / "mlops"), "run", "--reset", "--json"],
        env={**os.environ, "MLOPS_HOME": str(home)},
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        timeout=RUN_TIMEOUT_SECONDS,
        text=True,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"mlops run failed ({done.returncode}): {result.get('error')}")
    return result


def redraw_page(home: Path, result: dict[str, Any]) -> None:
    """The run's page written again from its records (`mlops run --json`'s answer)."""
    from entrypoints.lifecycle_page import write_page
    from entrypoints.lifecycle_story import Day, Lifecycle, Scenario
    from mlops.config.runtime import setup
    from mlops.contracts.batches import read_manifest
    from mlops.contracts.usecase import active_use_case

    os.environ["MLOPS_HOME"] = str(home)
    settings = setup()
    first = read_manifest(settings.landing_dir / result["bootstrap"]["days"][0])
    start = datetime.fromisoformat(first["closed_at"]).date() - timedelta(days=1)  # as the run
    told = Lifecycle(
        Scenario(**result["scenario"]),
        result["bootstrap"],
        [Day(**day) for day in result["days"]],
        result["summary_html"],
    )
    write_page(settings, active_use_case(settings), told, start)


def take_screenshots(result: dict[str, Any], home: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    page = Path(result["summary_html"])
    screenshot(page.as_uri(), out / "lifecycle-page.png", height=2000)
    retrained = [d for d in result["days"] if d["decision"] == "retrain"]
    if retrained:
        drift = next(p for p in retrained[0]["links"]["evidently_reports"] if "drift" in p)
        screenshot(Path(drift).as_uri(), out / "evidently-drift-report.png", height=1800)
    with evidently_ui(home / "monitoring" / "workspace") as url:
        (project,) = json.loads(urllib.request.urlopen(f"{url}/api/projects").read())
        screenshot(f"{url}/projects/{project['id']}", out / "evidently-dashboard.png", 2400)
    print(f"pictures of the run in {out}", file=sys.stderr)


@contextmanager
def evidently_ui(workspace: Path) -> Iterator[str]:
    """`evidently ui` over a workspace on a free loopback port, until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [str(BIN / "evidently"), "ui", "--host", "127.0.0.1", "--port", str(port),
         "--workspace", str(workspace)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + UI_START_SECONDS
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/projects", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    message = f"evidently ui did not answer in {UI_START_SECONDS} s"
                    raise SystemExit(message) from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def screenshot(url: str, path: Path, height: int) -> None:
    """The page as headless Chromium draws it, `WIDTH` x `height` pixels."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Chromium is missing: `make browser` installs it")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
             f"--window-size={WIDTH},{height}", f"--screenshot={path}", url],
            capture_output=True,
            timeout=180,
            check=True,
        )  # fmt: skip
    print(f"  {path.name}: {url}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
