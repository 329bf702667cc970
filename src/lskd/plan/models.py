"""The model files of finished runs (image and NMT), checked at parse time: a run
whose `metrics.json` exists but whose `model.pt` is missing, or no longer has the
sha256 its metrics.json records (`model_sha256`; the damaged file is set aside), is
planned again with everything that depends on it: every run's model file is a final
target (`rule all`).

Digests are cached by (size, mtime) in `.snakemake/lskd/model_sha256.json`, so a
model file is hashed once, and again only when it is rewritten or truncated.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lskd.identity import METRICS, MODEL

if TYPE_CHECKING:
    from lskd.plan.grid import Grid

CACHE = Path(".snakemake") / "lskd" / "model_sha256.json"
SHA_KEY = "model_sha256"  # the key of a run's metrics.json
DAMAGED = ".damaged"  # suffix of a damaged model file set aside
# How lskd.models.checkpoint words a file that does not read as a checkpoint.
DAMAGE = ("corrupt or truncated", "not a PyTorch checkpoint")


def rebuild_command(model: str | Path) -> str:
    """The one command that rebuilds a run's model file and what depends on it."""
    return f"snakemake --cores all --forcerun {model}"


def rebuild_hint(err: Exception) -> str:
    """For a damaged model file of a finished run (a checkpoint error naming a
    `model.pt` beside a `metrics.json` that does not read as a checkpoint):
    `; rebuild it: <the command>`; else ''."""
    from lskd.errors import CheckpointError

    where, _, what = str(err).partition(": ")
    path = Path(where)
    if not isinstance(err, CheckpointError) or path.name != MODEL:
        return ""
    if not what.startswith(DAMAGE):
        return ""  # a file that reads but does not fit: rebuilding changes nothing
    if not path.with_name(METRICS).is_file():
        return ""
    return f"; rebuild it: {rebuild_command(path)}"


def grid_models(grid: Grid) -> list[str]:
    """The model.pt of every teacher and student run of the grid: its image tasks'
    and Table 5's (an NMT run's metrics.json, written when it is scored, records the
    digest of the model it scored)."""
    runs = {path for w in grid.pairs() for path in grid.pair_runs(w, MODEL)}
    return sorted(runs | set(grid.nmt_runs(MODEL)))


def stale_models(grid: Grid, cache: Path = CACHE) -> list[tuple[str, str]]:
    """(model.pt, why) of each finished run of the grid whose model file is missing or
    does not match the sha256 its metrics.json records."""
    return stale(grid_models(grid), cache)


def stale(models: Iterable[str], cache: Path = CACHE) -> list[tuple[str, str]]:
    """(model, why) for each of `models` whose run is finished (its metrics.json
    exists) and whose file is missing or has another sha256 than the one recorded."""
    digests = _read_cache(cache)
    out, changed = [], False
    for model in models:
        path = Path(model)
        metrics = path.with_name(METRICS)
        if not metrics.is_file():
            continue  # not finished: Snakemake plans it anyway
        if not path.is_file():
            out.append((model, f"missing (its {METRICS} is there)"))
            continue
        recorded = _recorded(metrics)
        if recorded is None:
            continue  # written before lskd recorded the digest
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        entry = digests.get(model)
        if entry is None or entry[:2] != stamp:
            entry = digests[model] = [*stamp, sha256(path)]
            changed = True
        if entry[2] != recorded:
            out.append((model, f"damaged: its sha256 is not the one {METRICS} records"))
    if changed:
        _write_cache(cache, digests)
    return out


def sha256(path: Path) -> str:
    """Hex sha256 of a file (as `lskd.models.checkpoint.sha256`, without torch: this
    runs at parse time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _recorded(metrics: Path) -> str | None:
    try:
        value = json.loads(metrics.read_text(encoding="utf-8")).get(SHA_KEY)
    except (OSError, ValueError, AttributeError):
        return None  # the jobs that read it name the file
    return value if isinstance(value, str) else None


def _read_cache(cache: Path) -> dict[str, list]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: Path, digests: dict[str, list]) -> None:
    """Best effort: a cache that cannot be written only costs hashing again."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps(digests, sort_keys=True), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass


def set_aside_stale_models(
    grid: Grid, dry_run: bool | None = None
) -> list[tuple[str, str]]:
    """Name each stale model file (`stale_models`) in one line; a damaged one is moved
    to `model.pt.damaged` (kept for inspection, never loaded). Both are then missing
    final targets (`rule all` asks for `grid_models`): the default target plans their
    jobs again, and everything downstream of them. A dry run (`dry_run`; None: read
    from the command line, `is_dry_run`) moves nothing and says what a run will do."""
    out = []
    for model, why in stale_models(grid):
        if Path(model).is_file():
            if dry_run is None:
                dry_run = is_dry_run()
            if dry_run:
                print(
                    f"lskd: {model}: {why}; a run without -n moves it to "
                    f"{Path(model).name}{DAMAGED} and plans it again with what "
                    "depends on it (this dry run changes nothing)",
                    file=sys.stderr,
                )
                out.append((model, why))
                continue
            os.replace(model, f"{model}{DAMAGED}")
            why += f" (moved to {Path(model).name}{DAMAGED})"
        print(
            f"lskd: {model}: {why}; planned again with what depends on it",
            file=sys.stderr,
        )
        out.append((model, why))
    return out


def is_dry_run(argv: list[str] | None = None) -> bool:
    """Whether this Snakemake command line (default: `sys.argv`) is a dry run (`-n`),
    read with Snakemake's own argument parser: the workflow object does not know yet
    while the Snakefile is parsed."""
    try:
        from snakemake.cli import get_argument_parser

        args, _ = get_argument_parser().parse_known_args(
            sys.argv[1:] if argv is None else argv
        )
    except (Exception, SystemExit):  # not Snakemake's command line
        return False
    return bool(getattr(args, "dryrun", False))


def runs_at_chance(grid: Grid) -> list[str]:
    """The finished runs of the grid whose metrics.json says `chance.at_chance`."""
    out = []
    for model in grid_models(grid):
        metrics = Path(model).with_name(METRICS)
        try:
            chance = json.loads(metrics.read_text(encoding="utf-8")).get("chance")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(chance, dict) and chance.get("at_chance") is True:
            out.append(str(metrics.parent))
    return out


def end_of_run(config: dict[str, Any]) -> None:
    """The workflow's `onsuccess` and `onerror`: record each run directory's data
    source now that it holds runs (`check_data_sources`), and name the runs at chance
    level, whose cells carry † and whose claims are not judged."""
    from lskd.errors import ConfigError
    from lskd.plan.checks import check_data_sources
    from lskd.plan.grid import Grid

    try:
        check_data_sources(config, True)
    except (ConfigError, OSError) as err:
        print(f"lskd: {err}", file=sys.stderr)
    at_chance = runs_at_chance(Grid(config))
    if at_chance:
        print(
            f"lskd: warning: {len(at_chance)} run(s) at chance level (test top-1 "
            "within the margin of 100/K): marked † in the tables, Δ and figures, "
            f"and the claims resting on them are not judged: {', '.join(at_chance)}",
            file=sys.stderr,
        )
