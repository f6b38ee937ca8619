"""`covid-robustness report`: one study's tables and figures as Markdown, PNGs and one HTML page.

Every number is read from the finished runs of the study in MLflow; no model or attack is run again.
The files are also logged as artifacts of a summary run (tag role=report) in the study's experiment. A
README.md already in the output folder gets its generated regions rewritten (readme.py).
"""

import argparse
import os
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from ..errors import ConfigError
from ..tracking import Tracker, check_server, runs_page
from .collect import collect
from .pages import build
from .readme import refresh

DEFAULT_STORE = Path("mlruns") / "mlflow.db"


def tracking_uri(uri: str | None) -> str:
    """The URI given, else MLFLOW_TRACKING_URI, else the sweep's default store; a sqlite store must exist."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_STORE.resolve()}"
    # MLflow would create an empty database at a mistyped path and then report no studies at all.
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"there is no MLflow store at {uri}; run a sweep first or pass --tracking-uri.")
    if uri.startswith(("http://", "https://")):
        check_server(uri)  # MLflow itself would retry for minutes before giving up
    return uri


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="covid-robustness report", description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the study (MLflow experiment) to report on")
    parser.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db")
    parser.add_argument("--out", type=Path, help="the folder to write into (default: reports/<study>)")
    args = parser.parse_args(argv)
    # One bar per downloaded artifact would bury the one line this command prints.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        uri = tracking_uri(args.tracking_uri)
        study = collect(MlflowClient(uri), args.study)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    out = args.out or Path("reports") / args.study
    files = build(study, out)
    if (page := out / "README.md").is_file() and refresh(page):  # a results folder's README: its regions
        print(f"{page}: generated regions rewritten")
    tracker = Tracker(uri, None, study.name)
    run_id = tracker.log_report(files, len(study.jobs))
    print(f"report of study {study.name!r} ({len(study.jobs)} jobs): {out / 'report.html'}; logged to run {run_id}")
    print(f"its runs in the MLflow UI: {runs_page(tracker.experiment_id, uri)}")
