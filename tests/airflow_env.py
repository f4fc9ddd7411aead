"""A throw-away Airflow home for the Airflow tests, set before airflow is first imported:
a temp AIRFLOW_HOME, a DAGs folder under it, a SQLite metadata DB migrated once by
`airflow db migrate`, and no example DAGs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="pipespec-airflow-"))
DAGS = HOME / "dags"
DAGS.mkdir()
os.environ.update({
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
})
_migrated = False


def migrate() -> None:
    """The metadata DB, created once per test session."""
    global _migrated
    if not _migrated:
        done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True,
                              text=True, env=os.environ.copy(), timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        _migrated = True


def dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def write(files: dict[str, bytes], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (folder / rel).write_bytes(data)
    return folder
