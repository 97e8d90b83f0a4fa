"""The study's SQLite file (DIR/study.sqlite): the study it holds, one row per finished run (committed as it
arrives, so a study run again resumes), the model's hash, and each session's wall time. Only the driver writes it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from diffdemo.study.provenance import machine
from diffdemo.study.spec import StudyError

DB_NAME = "study.sqlite"
COLUMNS = {
    "key": "TEXT PRIMARY KEY",
    "study": "TEXT NOT NULL",
    "problem": "TEXT NOT NULL",
    "image": "TEXT NOT NULL",
    "kind": "TEXT",
    "method": "TEXT",
    "seed": "INTEGER",
    "params": "TEXT NOT NULL",  # the run's parameters as given (JSON)
    "resolved": "TEXT",  # the method's parameters as it ran (defaults filled in, JSON)
    "psnr": "REAL",
    "ssim": "REAL",
    "lpips": "REAL",
    "residual": "REAL",
    "seconds": "REAL",
    "nfe": "INTEGER",
    "precision": "TEXT",
    "spacing": "TEXT",
    "model": "TEXT",
    "model_hash": "TEXT",
    "code_version": "TEXT",
    "machine": "TEXT",
    "recon_sha": "TEXT",
    "extra": "TEXT",
    "finished_at": "REAL",
}


class Database:
    """The study's SQLite file: its name, one row per finished run, and each session's wall time."""

    def __init__(self, path: Path, study: str, create: bool = True):
        if not create and not path.exists():
            raise StudyError(f"no study database in {path.parent}: run the study first")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.study, self._session = path, study, None
        self.db = sqlite3.connect(path)
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS study (name TEXT PRIMARY KEY, created REAL);"
            "CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, hash TEXT);"
            f"CREATE TABLE IF NOT EXISTS runs ({', '.join(f'{k} {v}' for k, v in COLUMNS.items())});"
            "CREATE TABLE IF NOT EXISTS sessions (started REAL, finished REAL, executor TEXT, runs INTEGER,"
            " machine TEXT);"
        )
        self._rename_old_columns()
        names = [r[0] for r in self.db.execute("SELECT name FROM study")]
        if names and names != [study]:
            raise StudyError(f"{path.parent} holds the study {names[0]!r}, not {study!r}: give another --out")
        if not names:
            self.db.execute("INSERT INTO study VALUES (?, ?)", (study, time.time()))
            self.db.commit()

    def _rename_old_columns(self) -> None:
        """A database made before the timestep spacing was called 'spacing' holds it in a column ``schedule``:
        renamed in place, so that such a database still opens and takes new rows. Its rows are kept, and as run keys
        still hash the spacing under its old name (``spec._as_keyed``), --report reads them and a resumed study
        skips them (without that, resuming would re-run every run: the keys would hash a name no run has now)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(runs)")}
        if "schedule" in have and "spacing" not in have:
            self.db.execute("ALTER TABLE runs RENAME COLUMN schedule TO spacing")
            self.db.commit()

    def done(self) -> set[str]:
        return {k for (k,) in self.db.execute("SELECT key FROM runs WHERE study = ?", (self.study,))}

    def add(self, rows: list[dict]) -> None:
        """Store the rows of one finished task in one transaction (an interruption loses only the task going on)."""
        for row in rows:
            values = {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in row.items()}
            cols = [k for k in COLUMNS if k in values]
            self.db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [values[k] for k in cols])  # fmt: skip
        if self._session is not None:
            self.db.execute("UPDATE sessions SET finished = ?, runs = runs + ? WHERE rowid = ?",
                            (time.time(), len(rows), self._session))  # fmt: skip
        self.db.commit()

    def rows(self) -> dict[str, dict]:
        cur = self.db.execute("SELECT * FROM runs WHERE study = ?", (self.study,))
        names = [d[0] for d in cur.description]
        out = {}
        for values in cur:
            row = dict(zip(names, values))
            for k in ("params", "resolved", "extra"):
                row[k] = json.loads(row[k]) if row[k] else {}
            out[row["key"]] = row
        return out

    def set_model_hash(self, name: str, digest: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?)", (name, digest))
        self.db.commit()

    def model_hash(self, name: str) -> str | None:
        found = self.db.execute("SELECT hash FROM models WHERE name = ?", (name,)).fetchone()
        return found[0] if found else None

    def session(self, executor: str) -> None:
        """A new session (this invocation's wall time), kept up to date by ``add``: a killed one still counts."""
        now = time.time()
        cur = self.db.execute("INSERT INTO sessions VALUES (?, ?, ?, 0, ?)", (now, now, executor, machine()))
        self.db.commit()
        self._session = cur.lastrowid

    def sessions(self) -> list[tuple]:
        return list(self.db.execute("SELECT started, finished, executor, runs, machine FROM sessions"))

    def close(self) -> None:
        self.db.close()
