"""An Optuna study that redoes an ablation table: every variant of a study file once, on N workers.

    walt-bench sweep --study experiments/studies/table3c.yaml --scale smoke --workers 2

How each variant completes exactly once, and what happens when things break:

1. The launcher (this process) creates the Optuna study ``<name>-<scale>`` in the storage (``sweep.storage``;
   ``--storage`` wins), the MLflow experiment of the same name and the study's parent run, and enqueues every
   variant that has no complete, waiting or running trial yet (so a stopped study resumes with what is left).
2. Workers (``walt-bench sweep --worker``, one process each, ``torch.set_num_threads(cores // workers)``, one
   GPU each via ``CUDA_VISIBLE_DEVICES`` when GPUs exist) claim enqueued trials one at a time: WAITING ->
   RUNNING is a single conditional update in the storage, so no two workers get the same trial. They never ask
   the sampler for a new point (Optuna's GridSampler ran a point twice with two workers). A claimed trial
   whose variant already completed, or is running under a lower-numbered trial (two launchers enqueued it
   at once), is closed as a duplicate without running.
3. A running trial records a heartbeat every ``sweep.heartbeat_s``; one silent for ``sweep.grace_s`` (its
   worker was killed) is failed by whichever worker looks next, and re-enqueued while it has retries left
   (``sweep.max_retries``; a trial that raised is re-enqueued the same way, with its error kept as the
   trial's ``error`` attribute and in its result JSON). Workers keep waiting while trials run elsewhere, so a
   dead worker's trial is retried by a live one.
4. Each trial runs every stage through ``stages.run_stages`` (``sweeps/trial.py``): shared upstream stages
   (tokenizer, cache) are trained once, under a lock named by their identity, and reused by the others.

``optuna-dashboard sqlite:///optuna.db --host 127.0.0.1`` shows the same storage (bind to 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from walt_bench.errors import UserError
from walt_bench.sweeps.config import StudyConfig

MLFLOW_RUN_ATTR = "mlflow_run_id"


def load_study(path: str | Path) -> StudyConfig:
    """The validated study file (its ``spec`` resolved relative to the file); exit 2 on a bad one."""
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--study: no file {path}; studies live in experiments/studies/")
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        study = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{path}: {problems}") from None

    def resolve(name: str) -> str:
        spec = (path.parent / name).resolve()
        if not spec.is_file():
            raise UserError(f"{path}: spec {name} does not exist (looked at {spec})")
        return os.path.relpath(spec) if Path.cwd().resolve() in spec.parents else str(spec)

    variants = {
        k: v.model_copy(update={"spec": resolve(v.spec)}) if v.spec else v for k, v in study.variants.items()
    }
    return study.model_copy(update={"spec": resolve(study.spec), "variants": variants})


def variant_spec_file(study: StudyConfig, variant: str) -> str:
    return study.variants[variant].spec or study.spec


def study_name(study: StudyConfig, scale: str) -> str:
    return f"{study.name}-{scale}"


def variant_spec(study: StudyConfig, variant: str, scale: str, extra: list[str] | tuple[str, ...] = ()):
    """The resolved spec of one variant (base spec + scale + study overrides + variant overrides + extra)."""
    from walt_bench.spec import load_spec
    from walt_bench.sweeps.trial import trial_overrides

    overrides = trial_overrides(study, variant, extra)
    return load_spec(variant_spec_file(study, variant), overrides, scale=scale), overrides


def open_storage(url: str, sweep):
    """RDB storage with heartbeats; a stale trial is re-enqueued while it has retries left."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    rdb = optuna.storages.RDBStorage(
        url,
        heartbeat_interval=sweep.heartbeat_s,
        grace_period=sweep.grace_s,
        heartbeat_stale_trial_callback=lambda study, trial: requeue(
            study, trial, sweep.max_retries, "worker lost: no heartbeat"
        ),
    )
    return optuna.storages.get_storage(rdb)  # the cached storage a Study uses (claims must go through it)


def requeue(study, trial, max_retries: int, why: str) -> bool:
    """Enqueue another attempt of ``trial``'s variant if it has retries left; returns whether it did."""
    attempt = int(trial.user_attrs.get("attempt", 1))
    if attempt > max_retries:
        return False
    study.enqueue_trial(
        {"variant": trial.params.get("variant") or trial.system_attrs["fixed_params"]["variant"]},
        user_attrs={"attempt": attempt + 1, "retry_of": trial.number, "previous_error": why},
        skip_if_exists=False,
    )
    return True


def _variant_of(trial) -> str | None:
    return trial.params.get("variant") or (trial.system_attrs.get("fixed_params") or {}).get("variant")


def prepare(study: StudyConfig, scale: str, storage_url: str, extra: list[str]) -> dict[str, Any]:
    """Create (or load) the Optuna study, enqueue what is left, create the MLflow experiment and parent run."""
    import optuna
    from optuna.trial import TrialState

    spec, _ = variant_spec(study, next(iter(study.variants)), scale, extra)
    name = study_name(study, scale)
    directions = [o.direction for o in study.objectives]
    storage = open_storage(storage_url, spec.sweep)
    ostudy = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    optuna.storages.fail_stale_trials(ostudy)
    ostudy.set_user_attr("table", study.table)
    busy = {TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING}
    taken = {_variant_of(t) for t in ostudy.get_trials(deepcopy=False) if t.state in busy}
    enqueued = [v for v in study.variants if v not in taken]
    for variant in enqueued:
        ostudy.enqueue_trial({"variant": variant}, user_attrs={"attempt": 1}, skip_if_exists=False)
    tracker = _study_run(study, scale, spec, ostudy)
    return {"study": ostudy, "name": name, "enqueued": enqueued, "tracker": tracker, "spec": spec}


def _study_run(study: StudyConfig, scale: str, spec, ostudy):
    """The MLflow parent run of the study (created once; a resumed study continues it)."""
    from walt_bench.tracking.mlflow import ensure_experiment, make_tracker, resolve_uri

    if not spec.tracking.enabled:
        return make_tracker(spec.tracking, "")
    with contextlib.suppress(Exception):  # a down server must not stop the study (the tracker journals)
        ensure_experiment(resolve_uri(spec.tracking), spec.tracking.experiment)
    tracker = make_tracker(
        spec.tracking,
        run_name=f"study {study_name(study, scale)}",
        params={"study": study.model_dump()},
        tags={"stage": "study", "table": study.table, "scale": scale, "study": study.name},
    )
    tracker.start(ostudy.user_attrs.get(MLFLOW_RUN_ATTR))
    if tracker.run_id and not str(tracker.run_id).startswith("local-"):
        ostudy.set_user_attr(MLFLOW_RUN_ATTR, tracker.run_id)
    return tracker


def tracking_overrides(study: StudyConfig, scale: str, mlflow_uri: str | None) -> list[str]:
    """Every trial logs to the study's experiment (and one URI, resolved once by the launcher)."""
    from walt_bench.tracking.mlflow import resolve_uri

    out = [f"tracking.experiment={study_name(study, scale)}"]
    base, _ = variant_spec(study, next(iter(study.variants)), scale, out)
    uri = mlflow_uri or resolve_uri(base.tracking)
    return [*out, f"tracking.uri={uri}"]


# -- workers ----------------------------------------------------------------------------------------------
def claim(ostudy, storage):
    """Move one WAITING trial to RUNNING (atomic in the storage); returns ``(optuna.Trial, trial id)`` or
    ``(None, None)`` when none is waiting.

    PostgreSQL makes the WAITING -> RUNNING update atomic (``SELECT ... FOR UPDATE``); SQLite has no row locks,
    and two workers were seen to claim the same trial, so on SQLite the claim also holds an exclusive file lock
    beside the database (the workers of a SQLite study share one machine)."""
    with _sqlite_claim_lock(storage):
        return _claim(ostudy, storage)


@contextlib.contextmanager
def _sqlite_claim_lock(storage) -> Iterator[None]:
    url = str(getattr(getattr(storage, "_backend", storage), "url", ""))
    if not url.startswith("sqlite:///"):
        yield
        return
    import fcntl

    lock = Path(url[len("sqlite:///") :]).expanduser().resolve().with_suffix(".claim.lock")
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _claim(ostudy, storage):
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(ostudy.study_name)
    for frozen in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
        storage.record_heartbeat(trial_id)  # before RUNNING, so a worker killed right after is seen as stale
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.trial.Trial(ostudy, trial_id), trial_id
        except UpdateFinishedTrialError:
            continue
    return None, None


def duplicate_of(ostudy, trial, variant: str) -> int | None:
    """The number of a trial that makes ``trial`` a duplicate (same variant, complete or running with a lower
    number), else None."""
    from optuna.trial import TrialState

    for other in ostudy.get_trials(deepcopy=False):
        if other.number == trial.number or _variant_of(other) != variant:
            continue
        if other.state == TrialState.COMPLETE or (
            other.state == TrialState.RUNNING and other.number < trial.number
        ):
            return other.number
    return None


@contextlib.contextmanager
def heartbeat(storage, trial_id: int, every_s: float) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            with contextlib.suppress(Exception):  # a storage hiccup: the next beat tries again
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def worker(
    study_file: str,
    scale: str,
    storage_url: str,
    results_dir: str,
    extra: list[str],
    *,
    index: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> dict[str, int]:
    """Claim and run trials until none is waiting or running; returns counts of what this worker did."""
    import optuna
    import torch
    from optuna.trial import TrialState

    from walt_bench.sweeps.trial import objective_values, run_trial

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, workers)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(study_file)
    base, _ = variant_spec(study, next(iter(study.variants)), scale, extra)
    sweep = base.sweep
    storage = open_storage(storage_url, sweep)
    pruner = (
        optuna.pruners.MedianPruner(n_warmup_steps=sweep.prune_warmup_steps)
        if sweep.pruner == "median" and len(study.objectives) == 1
        else optuna.pruners.NopPruner()
    )
    ostudy = optuna.load_study(study_name=study_name(study, scale), storage=storage, pruner=pruner)
    parent = ostudy.user_attrs.get(MLFLOW_RUN_ATTR)
    names = list(study.variants)
    done = {"complete": 0, "failed": 0, "duplicate": 0, "pruned": 0}
    log = lambda msg: print(f"[worker {index}] {msg}", flush=True)  # noqa: E731
    while True:
        optuna.storages.fail_stale_trials(ostudy)
        trial, trial_id = claim(ostudy, storage)
        if trial is None:
            running = ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                return done
            time.sleep(min(5.0, sweep.heartbeat_s))  # a trial runs elsewhere: its worker may yet die
            continue
        variant = trial.suggest_categorical("variant", names)
        dup = duplicate_of(ostudy, trial, variant)
        if dup is not None:
            trial.set_user_attr("duplicate_of", dup)
            ostudy.tell(trial, state=TrialState.PRUNED)
            done["duplicate"] += 1
            continue
        spec, overrides = variant_spec(study, variant, scale, extra)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
        log(f"trial {trial.number}: {variant} (attempt {trial.user_attrs.get('attempt', 1)})")

        def on_loss(value: float, step: int, trial=trial) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"loss {value:.4g} at step {step} is above the median")

        try:
            with heartbeat(storage, trial_id, sweep.heartbeat_s):
                result = run_trial(
                    study,
                    variant,
                    spec,
                    overrides,
                    spec_path=variant_spec_file(study, variant),
                    results_dir=results_dir,
                    parent_run_id=parent,
                    trial_number=trial.number,
                    gpus_per_trial=sweep.gpus_per_trial,
                    progress=progress,
                    on_loss=on_loss if sweep.pruner != "none" else None,
                )
            trial.set_user_attr("result", result["result_path"])
            ostudy.tell(trial, objective_values(study, result))
            done["complete"] += 1
            log(f"trial {trial.number}: {variant} complete")
        except optuna.TrialPruned as exc:
            trial.set_user_attr("error", f"pruned: {exc}")
            ostudy.tell(trial, state=TrialState.PRUNED)
            done["pruned"] += 1
        except Exception as exc:  # the trial failed; the study goes on
            error = f"{type(exc).__name__}: {exc}"[:2000]
            trial.set_user_attr("error", error)
            ostudy.tell(trial, state=TrialState.FAIL)
            frozen = next(t for t in ostudy.get_trials(deepcopy=False) if t.number == trial.number)
            retried = requeue(ostudy, frozen, sweep.max_retries, error)
            done["failed"] += 1
            log(f"trial {trial.number}: {variant} failed ({error}){'; retrying' if retried else ''}")


# -- the launcher ----------------------------------------------------------------------------------------
def _gpu_groups(workers: int, per_trial: int) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each worker: disjoint groups of ``per_trial`` GPUs (None: no GPUs)."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:
        count = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s for s in visible.split(",") if s.strip()] if visible else [str(i) for i in range(count)]
    ids = ids[:count]
    if not ids:
        return [None] * workers
    n = min(workers, len(ids) // per_trial)
    if n == 0:
        raise UserError(f"sweep.gpus_per_trial={per_trial} but only {len(ids)} GPUs are visible")
    return [",".join(ids[i * per_trial : (i + 1) * per_trial]) for i in range(n)]


def run_study(
    study_file: str,
    *,
    scale: str | None = None,
    workers: int = 1,
    storage: str | None = None,
    results_dir: str = "results",
    mlflow_uri: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = False,
) -> dict[str, Any]:
    """Prepare the study, run ``workers`` worker processes to the end, close the MLflow parent run; returns a
    summary ``{"name", "wall_s", "trials": [{number, variant, state, values, error}], "complete": n}``."""
    t0 = time.perf_counter()
    study = load_study(study_file)
    scale = scale or study.scale or "paper"
    extra = [*tracking_overrides(study, scale, mlflow_uri), *overrides]
    base, _ = variant_spec(study, next(iter(study.variants)), scale, extra)
    storage_url = storage or base.sweep.storage
    prep = prepare(study, scale, storage_url, extra)
    print(
        f"study {prep['name']} ({storage_url}): {len(study.variants)} variants, "
        f"{len(prep['enqueued'])} to run; {workers} worker(s)",
        flush=True,
    )
    groups = _gpu_groups(workers, base.sweep.gpus_per_trial)
    procs = []
    for i, gpus in enumerate(groups):
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // len(groups)))}
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpus
        cmd = [
            sys.executable,
            "-m",
            "walt_bench",
            "sweep",
            "--study",
            study_file,
            "--scale",
            scale,
            "--storage",
            storage_url,
            "--results",
            results_dir,
            "--worker",
            str(i),
            "--workers",
            str(len(groups)),
            *extra,
        ]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    ostudy = prep["study"]
    trials = []
    for t in ostudy.get_trials(deepcopy=False):
        trials.append(
            {
                "number": t.number,
                "variant": _variant_of(t),
                "state": t.state.name,
                "values": t.values,
                "error": t.user_attrs.get("error"),
                "result": t.user_attrs.get("result"),
            }
        )
    complete = {t["variant"] for t in trials if t["state"] == "COMPLETE"}
    summary = {
        "name": prep["name"],
        "storage": storage_url,
        "wall_s": round(time.perf_counter() - t0, 1),
        "worker_exit_codes": codes,
        "complete": len(complete),
        "variants": len(study.variants),
        "trials": trials,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    tracker = prep["tracker"]
    out = Path(results_dir) / f"table{study.table}" / f"study-{prep['name']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    tracker.log_metrics({"trials_complete": len(complete), "wall_s": summary["wall_s"]}, step=0)
    tracker.log_artifact(str(out))
    tracker.end("FINISHED" if len(complete) == len(study.variants) else "FAILED")
    return summary
