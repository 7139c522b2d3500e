"""`hydra/sweeper=adaptive`: lambda placed round after round until lambda_c is located.

    python train.py -m experiment=q1 hydra/sweeper=adaptive hydra.sweeper.target_width=0.02 \
        hydra.sweeper.max_runs=150

The sweep's other keys (width, noise rate, lr, model, ...) define the curves; lambda and seed
are the sweeper's (sweep values of `lam`, `lam_index` and `seed` are dropped; the lambdas they
give set each curve's range unless `hydra.sweeper.lam_range=[lo,hi]` does). Round 0 is a
coarse grid over the range; each later round is analysis.adaptive.decide on the finished
runs: new lambdas and seeds where a curve's lambda_c interval is widest, until every curve's
is at most target_width wide or max_runs are planned. One line per round.

Every job of a round is composed and checked (dgl.preflight) before any job of it starts; a
bad one stops the sweep with one line. Job numbers go on across rounds. The plan and every
round's decision are written to `adaptive.json` in the sweep folder (and the config to
multirun.yaml, as the `dgl` sweeper does). Resumable: a rerun replays the rounds recorded there
(their jobs, whatever the decision code or options say now) and decides anew only past the
last one, from the finished runs on disk (the same runs give the same round); a round whose
jobs all finished is not launched again, and within a round finished jobs skip themselves.
Curves and jobs are identified without their place and speed overrides (data.root, ...:
dgl.identity.PLACE_AND_SPEED), so a rerun from another checkout continues the same sweep.
Works with any launcher that runs the jobs (basic, local_gpus, slurm); `hydra/launcher=list`
lists round 0 only.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from dgl.config import LAM_RANGE

PLACED = ("lam", "lam_index", "seed")  # keys the sweeper sets itself
ADAPTIVE = "adaptive.json"


@dataclass
class AdaptiveSweeperConf:
    _target_: str = "hydra_plugins.dgl_launcher.adaptive_sweeper.AdaptiveSweeper"
    max_batch_size: Any = None  # launch a round this many jobs at a time (null: all at once)
    params: Any = None
    target_width: float = 0.02  # stop when every curve's lambda_c interval is at most this wide
    max_runs: int = 150  # runs in all, every round and curve
    lam_range: Any = None  # [lo, hi] of round 0; null: from the sweep's lambda values
    grid_points: int = 5  # lambdas of round 0
    seeds_per_point: int = 2  # seeds per lambda placed
    points_per_round: int = 3  # new lambdas per curve and round
    min_cell_runs: int = 4  # runs each cell around the mean crossing needs before its interval counts
    min_round_runs: Any = None  # a smaller round is filled up to this; null: points_per_round x seeds_per_point
    min_spacing: Any = None  # a new lambda this close to a cell joins it; null: target_width / 4
    threshold: Any = None  # error threshold of lambda_c; null: midway between the plateau and chance
    chance_error: float = 0.9
    confidence: float = 0.95
    n_boot: int = 300
    lam_bounds: Any = field(default_factory=lambda: list(LAM_RANGE))  # lambda is never placed outside
    metric: str = "best_error"  # the error read from each result.json
    max_rounds: int = 30


ConfigStore.instance().store(group="hydra/sweeper", name="adaptive", node=AdaptiveSweeperConf,
                             provider="dgl_launcher")


def _num(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".") if "." in f"{x:.4f}" else str(x)


class AdaptiveSweeper(BasicSweeper):
    def __init__(self, max_batch_size=None, params=None, max_rounds=30, metric="best_error", lam_range=None,
                 **options):
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.max_rounds, self.metric, self.lam_range = int(max_rounds), metric, lam_range
        self.options = {k: (list(v) if OmegaConf.is_list(v) or isinstance(v, (list, tuple)) else v)
                        for k, v in options.items()}

    # ------------------------------------------------------------------ curves and ranges
    def _curves(self, arguments):
        """{curve id: overrides}, {curve id: (lo, hi)}: the sweep's jobs without lam/seed."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from analysis.adaptive import curve_id
        from dgl.preflight import sweep_job
        from dgl.sweeps import expand

        loader = self.hydra_context.config_loader
        params = {k: v for k, v in (self.params or {}).items()}
        parser = OverridesParser.create(loader)
        args = [a for a in arguments if parser.parse_override(a).key_or_group not in PLACED]
        placed_args = [a for a in arguments if parser.parse_override(a).key_or_group in PLACED]
        curve_params = {k: v for k, v in params.items() if k not in PLACED}
        curves = {}
        for job in expand(curve_params, args, loader):
            curves.setdefault(curve_id(job), list(job))
        ranges = {}
        if self.lam_range is not None:
            lo, hi = (float(v) for v in self.lam_range)
            ranges = {c: (lo, hi) for c in curves}
        else:  # the lambdas the sweep would run, per curve
            lam_params = {k: v for k, v in params.items() if k != "seed"}
            lam_args = [a for a in placed_args if parser.parse_override(a).key_or_group != "seed"]
            if not any(k in ("lam", "lam_index") for k in lam_params) and not lam_args:
                raise SystemExit("error: the sweep gives no lambda values to take the range from: "
                                 "add hydra.sweeper.lam_range=[LO,HI]; nothing was run")
            lams = {}
            for num, job in enumerate(expand(lam_params, args + lam_args, loader)):
                cfg = sweep_job(self.hydra_context, self.config, job, num)
                key = curve_id(o for o in job if parser.parse_override(o).key_or_group not in PLACED)
                lams.setdefault(key, []).append(float(cfg.lam))
            ranges = {c: (min(lams[c]), max(lams[c])) for c in curves}
        return curves, ranges

    # ------------------------------------------------------------------ runs on disk
    def _finished(self, sweep_dir, planned, curves):
        """{(curve, lam, seed): error} of the planned jobs whose result is final."""
        from dgl.identity import job_key
        from dgl import records
        from dgl.sweeps import existing_jobs

        latest = {job_key(o): d for o, d in existing_jobs(sweep_dir)} if sweep_dir.exists() else {}
        out = {}
        for c, lam, seed in planned:
            d = latest.get(job_key(self._job(curves[c], lam, seed)))
            result = records.read_result(d) if d is not None else None
            if not result or result.get("status") not in records.FINAL_STATUSES:
                continue
            y = result.get(self.metric)
            if y is None and result["status"] == "diverged":
                y = self.options["chance_error"]
            if y is not None:
                out[(c, lam, seed)] = float(y)
        return out

    @staticmethod
    def _job(curve_overrides, lam, seed):
        return [*curve_overrides, f"lam={_num(lam)}", f"seed={int(seed)}"]

    # ------------------------------------------------------------------ the sweep
    def sweep(self, arguments):
        import dgl  # noqa: F401  (the resolvers the configs use)
        from analysis.adaptive import Options, decide
        from dgl import records
        from dgl.config import ConfigError
        from dgl.data import DataError
        from dgl.preflight import check_sweep_job, sweep_job

        opt = Options(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in self.options.items()})
        curves, ranges = self._curves(arguments)
        varying = [i for i in range(max((len(o) for o in curves.values()), default=0))
                   if len({tuple(o)[i:i + 1] for o in curves.values()}) > 1]
        labels = {c: (" ".join(o[i] for i in varying if i < len(o)) or "curve") for c, o in curves.items()}
        sweep_dir = Path(self.config.hydra.sweep.dir)
        path = sweep_dir / ADAPTIVE
        plan = {"options": {**self.options, "max_rounds": self.max_rounds, "metric": self.metric,
                            "lam_range": None if self.lam_range is None else [float(v) for v in self.lam_range]},
                "curves": {c: {"overrides": o, "lam_range": list(ranges[c])} for c, o in curves.items()}}
        recorded = _recorded(_read(path), plan, path)
        checks = not getattr(self.launcher, "checks_jobs", False)
        state = {"plan": plan, "rounds": [], "stop": ""}
        planned, returns, data_checked = [], [], {}
        for r in range(max(self.max_rounds, len(recorded)) + 1):
            if r < len(recorded):  # decided before: its jobs, whatever the decision would be now
                entry = {**recorded[r], "round": r, "first_job": len(planned)}
                print(f"{entry['line']} [recorded in {ADAPTIVE}]", flush=True)
            else:
                finished = self._finished(sweep_dir, planned, curves)
                by_curve = {c: [] for c in curves}
                for (c, lam, seed), y in sorted(finished.items()):
                    by_curve[c].append((lam, seed, y))
                d = decide(by_curve, ranges, opt, planned=len(planned))
                line = d.line(r, labels)
                print(line, flush=True)
                if r >= self.max_rounds and d.jobs:
                    d.stop, d.jobs = f"max_rounds={self.max_rounds} reached", []
                entry = {"round": r, "first_job": len(planned), "line": line, **d.record()}
            state["rounds"].append(entry)
            if not entry["jobs"]:
                state["stop"] = entry["stop"]
                print(f"adaptive sweep done: {entry['stop']}", flush=True)
                break
            placed = [(c, float(lam), int(seed)) for c, lam, seed in entry["jobs"]]
            jobs = [self._job(curves[c], lam, seed) for c, lam, seed in placed]
            first = len(planned)
            entry["overrides"] = jobs  # what dgl.status lists as this round's jobs
            if checks:
                checked = []
                for i, job in enumerate(jobs):
                    try:
                        checked.append(check_sweep_job(sweep_job(self.hydra_context, self.config, job, first + i),
                                                       data_checked))
                    except (ConfigError, DataError) as e:
                        msg = f"round {r} job #{first + i} ({' '.join(job)}): {e}"
                        if sweep_dir.exists():
                            state["stop"] = f"refused: {msg}"
                            records.write_json(path, state)
                        raise SystemExit(f"error: {msg}; nothing of round {r} was run") from None
            if not checks:  # a launcher that only lists (and writes nothing): round 0 is all there is to list
                returns.append(self.launcher.launch(jobs, initial_job_idx=first))
                print("listed round 0 only (the later rounds depend on its results)", flush=True)
                return returns
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if r == 0:
                OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            planned += placed
            records.write_json(path, state)
            done = self._finished(sweep_dir, placed, curves)
            if len(done) == len(jobs):
                print(f"round {r}: its {len(jobs)} runs are finished on disk, not launched again", flush=True)
                continue
            batch = self.max_batch_size if (self.max_batch_size or 0) > 0 else len(jobs)
            for start in range(0, len(jobs), batch):
                results = self.launcher.launch(jobs[start:start + batch], initial_job_idx=first + start)
                for res in results:
                    _ = res.return_value  # raises a failed job's exception, as the basic sweeper does
                returns.append(results)
            missing = [j for j in placed if j not in self._finished(sweep_dir, placed, curves)]
            if missing:
                c, lam, seed = missing[0]
                state["stop"] = f"round {r}: {len(missing)} jobs left no final result"
                records.write_json(path, state)
                raise SystemExit(f"error: round {r}: {len(missing)} jobs left no final result (first: "
                                 f"{' '.join(self._job(curves[c], lam, seed))}); rerun the command to continue")
        records.write_json(path, state)
        return returns


def _recorded(old, plan, path):
    """The rounds of an earlier run of this sweep (its adaptive.json read: ``old``) that a rerun
    replays, with their curves named as in ``plan``; refuses a file of other curves or metric.
    Other options may differ (a larger max_runs continues a sweep that spent its budget): they
    decide only the rounds past the recorded ones."""
    from analysis.adaptive import curve_id

    if not old:
        return []
    rename = {c: curve_id(spec["overrides"]) for c, spec in old["plan"]["curves"].items()}  # older files: ids with data.root
    theirs, ours = old["plan"]["options"], plan["options"]
    if ({rename[c]: s["lam_range"] for c, s in old["plan"]["curves"].items()} !=
            {c: s["lam_range"] for c, s in plan["curves"].items()} or theirs.get("metric") != ours["metric"]):
        raise SystemExit(f"error: {path} holds an adaptive sweep of other curves, ranges or metric: rerun it with "
                         f"its own, or give this sweep its own folder (hydra.sweep.dir=...); nothing was run")
    changed = [f"{k}: {theirs.get(k)} there, {ours.get(k)} here" for k in sorted(set(theirs) | set(ours))
               if theirs.get(k) != ours.get(k)]
    if changed:
        print(f"note: options differ from {path} ({'; '.join(changed)}): its recorded rounds are replayed, "
              f"the rounds past them use these", flush=True)
    rounds = [r for r in old["rounds"] if r.get("jobs")]  # a round without jobs only said why it stopped
    if old.get("stop", "").startswith("refused"):
        rounds = rounds[:-1]  # checked and refused: none of its jobs ran
    return [{**r, "jobs": [[rename.get(c, c), lam, seed] for c, lam, seed in r["jobs"]],
             "located": [rename.get(c, c) for c in r.get("located", [])],
             "reasons": {rename.get(c, c): v for c, v in r.get("reasons", {}).items()},
             "estimates": {rename.get(c, c): v for c, v in r.get("estimates", {}).items()}} for r in rounds]


def _read(path):
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
