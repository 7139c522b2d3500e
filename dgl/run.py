"""The Hydra task: one job = one configuration, trained in its own folder.

Before anything else the job is checked again (dgl.preflight: valid config, data present,
a folder that holds nothing of another config): a sweep may start a job long after the
sweep was checked, on another machine. A job whose folder already holds a finished result
returns at once; one that another process is training is left alone; an interrupted one
resumes from its checkpoint. A failure during training is recorded in result.json (status
`failed`) and re-raised, so the launcher reports it and a rerun retries it.
"""

import logging
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from dgl import identity, records
from dgl.config import ConfigError, device_type
from dgl.data import DataError
from dgl.preflight import check_job

log = logging.getLogger("dgl")


def run(cfg):
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    try:
        check_job(cfg, run_dir)
    except (ConfigError, DataError) as e:
        raise SystemExit(f"error: {e}") from None

    if records.is_finished(run_dir):
        result = records.read_result(run_dir)
        log.info(f"already {result['status']}, nothing to do: {run_dir / records.RESULT}")
        return result
    lock = records.RunLock(run_dir)
    if not lock.acquire():
        log.warning(f"another process is training in {run_dir}; leaving it alone")
        return None
    with lock:
        if records.is_finished(run_dir):  # another process finished it while we looked
            return records.read_result(run_dir)
        config = identity.recorded(cfg, device_type(cfg))
        if records.read_config(run_dir) is None:  # the folder's identity, before any training
            records.write_text(run_dir / records.CONFIG, OmegaConf.to_yaml(config))
        from dgl.trainer import train  # torch is imported only for jobs that train

        try:
            result = train(cfg, run_dir, overrides)
            lock.path.unlink(missing_ok=True)  # finished: no process trains here any more
            return result
        except DataError as e:
            raise SystemExit(f"error: {e}") from None
        except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
            metrics = run_dir / records.METRICS
            done = len(metrics.read_text().splitlines()) - 1 if metrics.exists() else 0
            log.warning(f"interrupted in epoch {min(done + 1, cfg.train.epochs)}/{cfg.train.epochs} ({run_dir}); "
                        "rerun the same command to resume from its last checkpoint")
            raise SystemExit(130) from None
        except Exception as e:
            log.error(f"failed: {type(e).__name__}: {e} (recorded in {run_dir / records.RESULT})")
            records.write_json(run_dir / records.RESULT, records.run_result(
                config, overrides, "failed", error=f"{type(e).__name__}: {e}", tb=traceback.format_exc()))
            raise
