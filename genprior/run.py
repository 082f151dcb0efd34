"""Distill a synthetic set: the one place where data, synset, objective and protocol meet.

    python genprior/run.py pixel=dm ipc=10
    accelerate launch genprior/run.py pixel=mtt ipc=1
    OMP_NUM_THREADS=1 accelerate launch --multi_gpu --num_processes 2 genprior/run.py pixel=dc ipc=1
    python genprior/run.py -m pixel=dc,dm ipc=1,10      # a sweep: every combination, one after the other

The loop, per step:  render (no grad) -> objective loss on a leaf copy of the images ->
dL/dimages -> synset.push_grad (chunked re-render, docs/design.md) -> sum the
synset's gradients over ranks -> SGD step -> log, checkpoint.

Processes split each step's work units (classes for DC/DM, trajectories for MTT; the
set's rendering is not split) and sum their gradients, so N processes compute what one
process computes. Rank 0
decides the run directory, holds it (genprior/rundir.py) and is the only writer. A
rerun with the same run_dir resumes from its last checkpoint; a run whose loss turns
NaN/inf stops and keeps the last good checkpoint.

The config (config groups, presets, overrides) is composed and every key checked before
anything is written: genprior/config.py. What a run writes as it goes (log.txt, curve.jsonl,
trackers): genprior/runlog.py.

A sweep (-m / --multirun, Hydra's `a=x,y` syntax) composes and checks every job before the
first starts, runs them one after the other in this process, each in its own run directory,
and ends with one summary table (genprior/report.py); a job that fails is reported there and
the others still run. Under several processes rank 0 judges the sets after the last job.

Exit codes: 0 done; 1 diverged (a sweep: some job failed); 2 bad input (one line; found by
the checks before a run starts, nothing is written; found later, e.g. a data file that does not
load, the run directory keeps what was finished); 130 stopped by SIGINT (Ctrl-C) and 143 by SIGTERM, both after saving every
finished step.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from genprior.config import Plan, check, compose, default_run_dir, sweep_jobs
from genprior.context import RunContext
from genprior.data import check_ipc, dataset_info, load_split, to_unit
from genprior.errors import ConfigError, Diverged, Terminated, exit_status, message, one_line
from genprior.files import write_json, write_torch
from genprior.host import cpu_threads, end_with_launcher, retain_freed_memory
from genprior.rundir import CONFIG, LOG, RunDirectory, config_diff
from genprior.runlog import RunLog, final_scalars
from genprior.shipped import CONFIG_DIR


@contextmanager
def held_signals(stopping: bool = False):
    """SIGINT and SIGTERM wait until the block ends, then stop the run as usual. A step's updates
    (the optimizer's, then the synset's own: HaBa's adversary takes a whole training step) land
    together, so a checkpoint never records step k for a set that has taken update k + 1.
    `stopping`: the run is already stopping (the last checkpoint's save); a signal caught then
    has nothing left to stop and is dropped."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    caught = []
    # a signal the process ignores (SIGINT in a `&` job of a script) stays ignored inside the block too
    held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught and not stopping:
        raise KeyboardInterrupt if caught[0] == signal.SIGINT else Terminated()


# ---------------------------------------------------------------- checkpoints

def objective_net_digest(cfg, d) -> str:
    """The network the objective distills through, as genprior.nets.net_digest names it. A checkpoint
    keeps it: its steps followed that network, so a later version of the network (the config reads
    the same) does not resume them."""
    from genprior.nets import net_digest

    info = dataset_info(d.name)
    kwargs = OmegaConf.to_container(cfg.objective.net_kwargs, resolve=True) if cfg.objective.net_kwargs else {}
    return net_digest(cfg.objective.net, info.channels, info.num_classes, d.resolution or info.resolution, **kwargs)


def save_checkpoint(path: Path, step: int, cfg, synset, optimizer, objective, net_digest: str) -> None:
    state = {"step": step, "config": OmegaConf.to_container(cfg, resolve=True), "net_digest": net_digest,
             "prior_digest": synset.prior_digest, "synset": synset.state_dict(),
             "synset_aux": synset.aux_state(),
             "optimizer": optimizer.state_dict(), "objective": objective.state_dict()}
    write_torch(path, state)  # atomic: a kill mid-write leaves the previous checkpoint intact


def check_checkpoint(path: Path, cfg, net_digest: str) -> dict | None:
    """The checkpoint in run_dir, if any, after making sure it belongs to this config and network
    (one written before checkpoints kept the network resumes as if it were unchanged; the log says so)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{path} is not a readable checkpoint ({type(e).__name__}); "
                          f"remove it to start over") from None
    if not isinstance(state, dict) or not {"config", "step", "synset"} <= state.keys():
        raise ConfigError(f"{path} is not a genprior checkpoint (no config, step or synset); remove it to start over")
    diff = config_diff(state["config"], OmegaConf.to_container(cfg, resolve=True))
    if diff:
        raise ConfigError(f"{path.parent} holds a run with another config ({diff}); pass another run_dir= or remove it")
    if state["step"] > cfg.iterations:  # the set went further than asked: exporting it as `iterations` would mislabel it
        raise ConfigError(f"{path} holds step {state['step']}, past iterations={cfg.iterations}; pass "
                          f"iterations={state['step']} (or more) to export it, or another run_dir= to start over")
    if state.get("net_digest", net_digest) != net_digest:
        raise ConfigError(f"{path.parent} holds a run distilled through another version of objective.net="
                          f"{cfg.objective.net} (network digest {state['net_digest']}, now {net_digest}); "
                          f"pass another run_dir= or remove it")
    return state


def check_prior(state: dict, synset, run_dir: Path) -> None:
    """A checkpoint's latents mean something only through the generator they were optimized in:
    the config can name the same file after the file was replaced (a retrained shipped generator)."""
    before = state.get("prior_digest", synset.prior_digest)
    if before != synset.prior_digest:
        raise ConfigError(f"{run_dir} holds a set distilled with another version of its generator "
                          f"(prior digest {before}, now {synset.prior_digest}); pass another run_dir= or remove it")


# ---------------------------------------------------------------- the loop

def build(plan: Plan, ctx: RunContext):
    """The run's synset (on CPU) and objective, each built by its own from_config."""
    synset = plan.synset.from_config(plan.synset_options, ctx)
    objective = plan.objective.from_config(plan.objective_options, ctx)
    if objective.init_lr is not None:  # the set learns the training lr the objective trains with (MTT)
        synset.learn_lr(objective.init_lr)
    return synset, objective


@contextmanager
def claimed_run_dir(cfg: DictConfig, state):
    """Rank 0 decides the run directory and holds it for the whole run (genprior/rundir.py);
    every rank gets its path, or the one-line reason it was refused.

    Yields (path, the RunDirectory on rank 0 else None). A ConfigError inside (a component
    that turns out not to fit the data) gives the directory back as it was found."""
    from accelerate.utils import broadcast_object_list

    claim, outcome = None, [None, None]
    if state.is_main_process:
        path = str(cfg.run_dir or default_run_dir(cfg))
        try:
            claim = RunDirectory.claim(path, OmegaConf.to_container(cfg, resolve=True))
            outcome = [path, None]
        except ConfigError as e:
            outcome = [path, str(e)]
    broadcast_object_list(outcome)  # rank 0 decides, so `${now:}`-style names agree across ranks
    if outcome[1]:
        raise ConfigError(outcome[1])
    try:
        yield Path(outcome[0]), claim
    except BaseException as e:  # a refusal; or a failure or stop before any step (an expert diverged, Ctrl-C)
        if claim:
            claim.abandon(untouched_only=not isinstance(e, ConfigError))
        raise
    finally:
        if claim:
            claim.release()


def make_accelerator(cfg: DictConfig, run_dir: Path):
    """This process's Accelerator: precision, and the trackers (genprior/trackers.py) writing under run_dir."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    trackers = None
    if cfg.log_with:  # (only then: no tracker code is imported otherwise)
        from genprior.trackers import names

        trackers = names(cfg.log_with)  # a plain list: Accelerate takes a ListConfig for one name
    project = ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "trackers"))
    try:
        return Accelerator(mixed_precision=cfg.mixed_precision, cpu=_cpu_ranks(), log_with=trackers,
                           project_config=project)
    except ValueError as e:  # e.g. fp8 without its backend: Accelerate's reason, on one line
        raise ConfigError(f"accelerate: {str(e).strip().splitlines()[0]}") from None


@contextmanager
def _ending_trackers(accelerator):
    """The accelerator, whose trackers are flushed and closed however the run ends. (Not
    `end_training()`: it also ends the process group, which the next job of a sweep still needs;
    main ends it once.)"""
    try:
        yield accelerator
    finally:
        for tracker in accelerator.trackers:
            tracker.finish()


def _cpu_ranks() -> bool:
    # Accelerate picks gloo (MULTI_CPU) for several ranks only when told cpu=True;
    # without it, ranks launched on a GPU-less machine would each run alone.
    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def distill(cfg: DictConfig, plan: Plan, judge_now: bool = True) -> Path:
    """One run: distill, export the set, and (`judge_now`) judge it; its run directory."""
    from accelerate import PartialState

    from genprior.data import cache_dir
    from genprior.progress import lines_to, progress

    state = PartialState(cpu=_cpu_ranks())  # ranks meet before the run directory is chosen
    rank, world, main = state.process_index, state.num_processes, state.is_main_process
    with (claimed_run_dir(cfg, state) as (run_dir, claim),
          _ending_trackers(make_accelerator(cfg, run_dir)) as accelerator,
          ExitStack() as progress_lines):
        ckpt_path = run_dir / "checkpoint.pt"
        d = plan.dataset
        net_digest = objective_net_digest(cfg, d)
        state = check_checkpoint(ckpt_path, cfg, net_digest)
        log = RunLog(run_dir, main, accelerator if cfg.log_with else None)
        new = main and not (run_dir / CONFIG).exists()
        if new:  # its set-up (experts, a fine-tune, inversions) logs into a directory that says whose it is
            claim.write_config(OmegaConf.to_yaml(cfg, resolve=True))  # (taken back if the set-up fails)
            progress_lines.enter_context(lines_to(run_dir / LOG))  # progress lines in log.txt too
            log(f"setting up {cfg.synset.kind} + {cfg.objective.kind} (what they build first, e.g. experts, a "
                f"fine-tune, inversions, is built once and cached)", echo=False)

        t_setup = time.time()
        real = load_split(d.name, "train", d.root, d.resolution, download=d.download, space=d.space)
        check_ipc(cfg.ipc, real)
        device = accelerator.device
        ctx = RunContext(real, cfg.ipc, cfg.seed, d, rank, world, device, cache_dir(), accelerator.wait_for_everyone)
        synset, objective = build(plan, ctx)
        synset.to(device)
        optimizer = torch.optim.SGD(synset.param_groups(OmegaConf.to_container(cfg.synset.optim, resolve=True)))
        start = 0
        if state is not None:
            check_prior(state, synset, run_dir)
            try:
                synset.load_state_dict(state["synset"])
            except RuntimeError as e:  # written by an older genprior whose set held other tensors
                raise ConfigError(f"{run_dir}/checkpoint.pt holds a set of other tensors than this one "
                                  f"({one_line(e)}); pass another run_dir= or remove it") from None
            synset.load_aux_state(state.get("synset_aux", {}))
            optimizer.load_state_dict(state["optimizer"])
            objective.load_state_dict(state["objective"])
            start = state["step"]
        if main and not new:  # a resumed run's, now that it resumes (a refused one leaves its files as found)
            claim.write_config(OmegaConf.to_yaml(cfg, resolve=True))
            progress_lines.enter_context(lines_to(run_dir / LOG))
        if cfg.log_with:
            from genprior.trackers import start as start_trackers

            start_trackers(accelerator, OmegaConf.to_container(cfg, resolve=True), run_dir)
        log.drop_curve_after(start)  # steps past the checkpoint were lost with the process; they are redone
        log(f"{'resuming at' if start else 'starting'} step {start}/{cfg.iterations} in {run_dir} "
            f"({world} process{'es' if world > 1 else ''}, {accelerator.mixed_precision} precision, {device}"
            f"{f', {torch.get_num_threads()} threads' if device.type == 'cpu' else ''}); "
            f"storage {synset.storage()}; set-up {time.time() - t_setup:.0f}s"
            + "".join(f"; {note}" for note in (synset.setup, objective.setup) if note)
            + ("; the checkpoint predates network digests: resumed as if objective.net were unchanged"
               if state is not None and "net_digest" not in state else "")
            + ("; the checkpoint predates prior digests: resumed as if the generator were unchanged"
               if state is not None and "prior_digest" not in state and synset.prior_digest else ""))
        log.track({f"storage/{k}": v for k, v in synset.storage().items() if isinstance(v, (int, float))}, start)
        if main and cfg.eval.every and start and start % cfg.eval.every == 0 and not log.has_accuracy_at(start):
            # a stop inside step `start`'s curve point saved the step, not the point: it is taken now
            log(f"step {start} curve accuracy", curve={"step": start, **_curve_point(cfg, synset, device, log, start)})

        # This rank's share of each step's work. What every rank needs whole (DC's network
        # following the set between steps) each rank computes alike from identical inputs.
        units = list(range(objective.units()))[rank::world]
        params = [p for p in synset.parameters() if p.requires_grad]
        last_saved = completed = start
        bar = progress(range(start, cfg.iterations), initial=start, total=cfg.iterations, enabled=main,
                       desc=f"{cfg.synset.kind}+{cfg.objective.kind}", dynamic_ncols=True)
        t0 = t_logged = t_saved = time.time()
        step_logged = start

        def saved() -> str:
            return (f"checkpoint at step {last_saved} in {ckpt_path}" if last_saved else
                    f"no checkpoint yet (the first is written at step {min(cfg.checkpoint_every, cfg.iterations)}"
                    + (f" or after {cfg.checkpoint_minutes:g} min" if cfg.checkpoint_minutes else "") + ")")

        try:
            for step in bar:
                loss = distill_step(synset, objective, step, units, cfg.chunk, accelerator.autocast, world, params)
                loss, finite = _sum_over_ranks(loss, params, world)
                if not finite:
                    reason = (f"loss {loss:.4g} or its gradient is not finite at step {step + 1}: the synset's lr is "
                              f"too large or an expert trajectory is degenerate; last good {saved()}")
                    log(f"diverged: {reason}", echo=False)  # main prints it; log.txt keeps it
                    raise Diverged(reason)
                with held_signals():  # the set's update and the synset's own after it: both or neither
                    optimizer.step()
                    hold_floors(optimizer)
                    optimizer.zero_grad(set_to_none=True)
                    synset.end_step(step)
                    completed = step + 1
                if synset.lr is not None:
                    check_learned_lr(synset.lr, step + 1, saved, log)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                if (step + 1) % cfg.log_every == 0 or step == start:
                    # the pace since the last line, not since the start: a first step that compiles
                    # (objective.compile, protocol.compile) would otherwise weigh on every line after it
                    now = time.time()
                    log(f"step {step + 1} loss {loss:.6g} {(now - t_logged) / (step + 1 - step_logged):.3f}s/it",
                        curve={"step": step + 1, "loss": loss})
                    t_logged, step_logged = now, step + 1
                # by steps, and by the clock: slow steps would otherwise leave hours to a kill -9. Only the
                # main rank saves and nothing collective happens here, so the ranks' clocks need not agree.
                due = (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.iterations or (
                    cfg.checkpoint_minutes and time.time() - t_saved >= 60 * cfg.checkpoint_minutes)
                if due:
                    if main:
                        save_checkpoint(ckpt_path, step + 1, cfg, synset, optimizer, objective, net_digest)
                    last_saved, t_saved = step + 1, time.time()
                if cfg.eval.every and (step + 1) % cfg.eval.every == 0 and main:
                    point = _curve_point(cfg, synset, device, log, step + 1)
                    log(f"step {step + 1} curve accuracy", curve={"step": step + 1, **point})
        except (KeyboardInterrupt, Terminated) as stop:  # keep every finished step
            if main and completed > last_saved:
                with held_signals(stopping=True):  # a second Ctrl-C, or the launcher's SIGTERM after its own SIGINT, waits for it
                    save_checkpoint(ckpt_path, completed, cfg, synset, optimizer, objective, net_digest)
                last_saved = completed
            log(f"stopped by {'SIGTERM' if isinstance(stop, Terminated) else 'SIGINT'} after step {completed} "
                f"(this session ran {start}-{completed} in {time.time() - t0:.1f}s); {saved()}: "
                f"{'rerun to resume' if last_saved else 'a rerun starts over'}")
            raise
        finally:
            bar.close()
        log(f"distilled steps {start}-{cfg.iterations} ({cfg.iterations - start} steps) in {time.time() - t0:.1f}s")
        if main:  # the other ranks have nothing left to do and leave: waiting at a barrier through
            export(cfg, synset, run_dir, log)  # the judging (an hour on a CPU) would time out (gloo: 30 min)
            if judge_now:
                judge(cfg, run_dir, log, device)
    return run_dir


def distill_step(synset, objective, step: int, units: list[int], chunk: int, autocast, world: int = 1,
                 params: list[torch.nn.Parameter] | None = None) -> torch.Tensor:
    """One step's gradients into the synset (not yet summed over ranks); returns this rank's loss.

    The images the objective sees are a leaf tensor rendered without a graph; its
    gradient goes back into the synset chunk by chunk (docs/design.md, "The constant-memory backward").
    A synset's auxiliary term joins the loss on the same images, 1/world of it per rank."""
    synset.begin_step(step)
    images = synset.render_all(chunk).requires_grad_(True)
    with autocast():
        loss = objective(images, synset.labels, step, units, synset.lr) if units else images.new_zeros(())
        aux = synset.auxiliary_loss(images, step)
        if aux is not None:
            loss = loss + aux / world
    if loss.requires_grad:
        # only into what the set learns: the images (then push_grad), and the set's parameters the
        # loss reaches directly (its learned lr; HaBa's auxiliary term renders a second view with a
        # graph). DC's network and every other module the loss ran through would otherwise get a
        # .grad nobody reads (DC: through its double backward)
        params = [p for p in synset.parameters() if p.requires_grad] if params is None else params
        loss.backward(inputs=[images, *params])
    if images.grad is not None:
        synset.push_grad(images.grad, chunk)
    return loss.detach()


@torch.no_grad()
def hold_floors(optimizer) -> None:
    """Every group with a floor (synset.optim.<group>.floor) back at or above it after an update."""
    for group in optimizer.param_groups:
        if group.get("floor") is not None:  # a checkpoint from before floors existed has none
            for p in group["params"]:
                p.clamp_(min=group["floor"])


def check_learned_lr(lr: torch.Tensor, step: int, saved: Callable[[], str], log=None) -> None:
    """Diverged if the set's learned training lr (MTT) is no longer positive: its student would
    climb the loss, and judging the set (SGD at that lr) would fail only after the whole run."""
    if lr.item() > 0:
        return
    reason = (f"the set's learned lr fell to {lr.item():.3g} at step {step}: lower synset.optim.lr.lr; "
              f"last good {saved()}")
    if log is not None:
        log(f"diverged: {reason}", echo=False)
    raise Diverged(reason)


def _sum_over_ranks(loss: torch.Tensor, params: list[torch.nn.Parameter], world: int) -> tuple[float, bool]:
    """Sum the loss and the synset's gradients over ranks in one flat all-reduce.

    Each rank computed its share of the units, so the sum is the full gradient. Returns
    the total loss and whether it and every gradient are finite."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([loss.float().reshape(1)] + [g.reshape(-1).float() for g in grads])
    if world > 1:
        torch.distributed.all_reduce(flat)
    offset = 1
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()
    return flat[0].item(), bool(torch.isfinite(flat).all())


def _exported(synset, chunk: int) -> tuple[torch.Tensor, torch.Tensor, float | None, dict]:
    """The set as it is saved and judged: float32 images and labels on the CPU, its learned lr
    (None: the protocol's), its items' metadata (synset.export_items)."""
    images, labels, meta = synset.export_items(chunk)
    return images.float().cpu(), labels.cpu(), None if synset.lr is None else synset.lr.item(), meta


def _curve_point(cfg, synset, device, log, step: int) -> dict:
    from genprior.evaluate import evaluate_images, load_protocol
    from genprior.export import grid

    protocol = load_protocol(cfg.eval.curve_protocol)  # a named protocol beside the final one
    images, labels, lr, meta = _exported(synset, cfg.chunk)  # the set as the final judging sees it
    acc = evaluate_images(images, labels, cfg.dataset.name, protocol, cfg.dataset.space, lr,
                          str(device), cfg.dataset.root, views=meta.get("views", 1))
    if log.trackers:
        d = cfg.dataset
        log.image(grid(to_unit(images, d.name, d.space, d.root), labels, dataset_info(d.name).num_classes), step)
    return {model: s["mean"] for model, s in acc.items()}


def export(cfg, synset, run_dir: Path, log) -> None:
    """The set (safetensors, and the latents for latent synsets), PNGs, grid.png, the set as DD-Ranking
    reads one (dd_ranking/); `judge` then writes its metrics.json."""
    from genprior import ddranking
    from genprior.data import dataset_info
    from genprior.files import save_safetensors
    from genprior.export import grid, piled_at_ends, save_grid, save_image_folder
    from genprior.setfile import save_set

    (run_dir / "metrics.json").unlink(missing_ok=True)  # it judged the set this one replaces (a resumed run)
    images, labels, lr, item_meta = _exported(synset, cfg.chunk)
    d = cfg.dataset
    set_path = save_set(run_dir / "synset.safetensors", images, labels, d.name, d.space, lr,
                        meta={"synset": cfg.synset.kind, "objective": cfg.objective.kind, "ipc": cfg.ipc,
                              "iterations": cfg.iterations, "storage": synset.storage(),
                              "prior_digest": synset.prior_digest, **item_meta})
    stored = synset.stored_state()
    if stored:  # a set stored as more than its images: keep what it is stored as
        save_safetensors(stored, run_dir / "latents.safetensors")
    info = dataset_info(d.name)
    unit = to_unit(images, d.name, d.space, d.root)
    save_image_folder(unit, labels, info.class_names, run_dir / "images")
    save_grid(unit, labels, info.num_classes, run_dir / "grid.png")
    ddranking.export(images, labels, cfg.protocol.lr if lr is None else lr, run_dir / "dd_ranking")
    log(f"wrote {set_path}, {run_dir / 'grid.png'}, {run_dir / 'images'}/, {run_dir / 'dd_ranking'}/")
    # the real data's share from a strided sample (folder data sets load class by class), in the
    # normalized space every split is cached in (genprior/data.py)
    real = load_split(d.name, "train", d.root, d.resolution).images
    real = real[::max(1, len(real) // 1000)]
    piled = piled_at_ends(unit, to_unit(real, d.name, "normalized", d.root))
    if piled:
        log(f"warning: {piled}")
    if log.trackers:
        log.image(grid(unit, labels, info.num_classes), cfg.iterations)


def judge(cfg, run_dir: Path, log, device: torch.device) -> None:
    """metrics.json for the set `export` wrote: its accuracy under cfg.protocol (every architecture's
    row kept in judged/, so a killed judging resumes there), baselines, image metrics."""
    from genprior.evaluate import evaluate_set, judged_dir
    from genprior.report import accuracy_text
    from genprior.setfile import load_set

    set_path = run_dir / "synset.safetensors"
    saved = load_set(set_path)
    d = cfg.dataset
    metrics = {}
    if cfg.eval.enabled:
        t0 = time.time()
        protocol = cfg.protocol  # checked at the start (check)
        metrics = evaluate_set(saved, protocol, device, d.root, cfg.eval.baselines, str(set_path),
                               rows=judged_dir(run_dir / "metrics.json"))
        def acc(rows: dict) -> str:
            return ", ".join(f"{m} {accuracy_text(s)}" for m, s in rows.items()) + " %"

        log(f"{protocol.name}: {acc(metrics['synthetic'])} ({time.time() - t0:.0f}s)")
        for name in ("random_real", "full_data"):
            if name in metrics:
                log(f"  {name.replace('_', ' ')}: {acc(metrics[name])}")
        for model, s in metrics.get("dd_ranking", {}).items():
            log(f"  DD-Ranking {model}: " + ", ".join(f"{k.upper()} {v['mean']:.3f} +- {v['std']:.3f}"
                                                     for k, v in s.items()))
    if cfg.eval.images.enabled:
        from genprior.metrics import image_metrics, summary_lines

        im = cfg.eval.images
        unit = to_unit(saved.images, d.name, d.space, d.root)
        metrics["images"] = image_metrics(unit, saved.labels, d.name, "test", tuple(im.spaces), im.lpips, d.root,
                                          device, limit=im.limit)
        for line in summary_lines(metrics["images"]):
            log(line)
    if metrics:
        metrics["storage"] = saved.meta["storage"]
        write_json(run_dir / "metrics.json", metrics)  # atomic: a kill leaves no half-written metrics
        log(f"wrote {run_dir / 'metrics.json'}")
        log.track(final_scalars(metrics), cfg.iterations)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        groups = {p.name: sorted(q.stem for q in p.glob("*.yaml")) for p in sorted(CONFIG_DIR.iterdir()) if p.is_dir()}
        print("config groups:", "; ".join(f"{g}={'|'.join(o)}" for g, o in groups.items()))
        return 0
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if a not in ("-m", "--multirun")]
    previous = signal.signal(signal.SIGTERM, _terminate)  # schedulers, docker stop and kill send it
    end_with_launcher()  # and `kill <accelerate launch>`, which the launcher itself does not pass on
    def work() -> int | None:
        retain_freed_memory()  # the same buffers every step: keep them mapped (genprior/host.py)
        if multirun:
            return sweep(sweep_jobs(overrides))  # 1 when a job failed
        cfg = compose(overrides)
        plan = check(cfg)
        cpu_threads(cfg.threads)  # accelerate launch would leave a CPU run on one thread
        distill(cfg, plan)

    try:
        return exit_status("genprior.run", work, "dataset.root=DIR", "dataset.download=true")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # once, after every job of a sweep (see _ending_trackers)


def sweep(jobs: list[list[str]]) -> int:
    """Every job of a sweep, one after the other; then one summary. Bad input in any job stops
    the sweep before the first starts (ConfigError); a job failing while it runs is reported
    and the others go on. Rerunning the sweep resumes or skips what finished (each run directory)."""
    from genprior.report import summary_table

    configs = []
    for i, job in enumerate(jobs):
        try:
            cfg = compose(job)
            configs.append((cfg, check(cfg)))
        except ConfigError as e:
            raise ConfigError(f"job {i} ({' '.join(job)}): {e}") from None
    _check_sweep(jobs, [cfg for cfg, _ in configs])
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    say = print if rank == 0 else (lambda *a, **k: None)  # every rank runs the sweep
    say(f"genprior.run: sweep of {len(jobs)} jobs", file=sys.stderr)
    # Under several processes rank 0 judges the sets after the last job, when the other ranks have
    # left: judging a set while they wait in the next job's first collective would outlast the
    # process group's timeout (gloo 30 min, NCCL 10) whenever judging takes long (an hour on a CPU).
    judge_later = world > 1
    done, failed = [], []

    def failure(i: int, job: list[str], e: Exception) -> None:
        reason = message(e, "dataset.root=DIR", "dataset.download=true") if isinstance(e, ConfigError) else \
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        failed.append((i, job, reason))
        say(f"genprior.run: job {i} failed: {reason}", file=sys.stderr)

    for i, (job, (cfg, plan)) in enumerate(zip(jobs, configs)):
        say(f"genprior.run: job {i} of {len(jobs)}: {' '.join(job)}", file=sys.stderr)
        try:
            cpu_threads(cfg.threads)
            done.append((i, job, cfg, distill(cfg, plan, judge_now=not judge_later)))
        except (KeyboardInterrupt, Terminated):
            raise  # the whole sweep stops; a rerun resumes this job and runs the rest
        except Exception as e:  # noqa: BLE001 - one job's failure is reported in the summary, the rest run
            failure(i, job, e)
    if judge_later and rank != 0:
        return 0  # rank 0 judges and sums up
    for i, job, cfg, run_dir in done if judge_later else []:
        say(f"genprior.run: judging job {i} ({run_dir})", file=sys.stderr)
        try:
            judge_finished(cfg, run_dir)
        except (KeyboardInterrupt, Terminated):
            raise  # a rerun of the sweep finds every set distilled and judges what is left
        except Exception as e:  # noqa: BLE001
            failure(i, job, e)
    failed_jobs = {i for i, _, _ in failed}
    done = [run_dir for i, _, _, run_dir in done if i not in failed_jobs]
    say(f"\n# sweep: {len(done)} of {len(jobs)} jobs done, {len(failed)} failed\n")
    if done:
        say(summary_table(done) + "\n")
    for i, job, reason in sorted(failed, key=lambda f: f[0]):
        say(f"- job {i} FAILED ({' '.join(job)}): {reason}")
    return 1 if failed else 0


def judge_finished(cfg: DictConfig, run_dir: Path) -> None:
    """Judge the set of a run that has ended (a multi-process sweep's job), holding its directory
    again: it was released when the run ended, and a run started on it since (a resumption) must not
    write the set while this reads it, nor this its metrics.json while that runs."""
    from accelerate import PartialState

    claim = RunDirectory.claim(run_dir, OmegaConf.to_container(cfg, resolve=True))
    try:
        cpu_threads(cfg.threads)  # the job's own, as when it distilled (its trackers are closed: log.txt only)
        judge(cfg, run_dir, RunLog(run_dir, True), PartialState().device)
    except BaseException:
        claim.abandon()  # a directory this claim had to create (removed meanwhile) does not stay behind
        raise
    claim.release()


def _check_sweep(jobs: list[list[str]], configs: list[DictConfig]) -> None:
    """Jobs of one sweep may not share a run directory (the second would refuse, or resume the
    first), and run in one process, so they share its precision."""
    owner: dict[str, int] = {}
    for i, cfg in enumerate(configs):
        path = str(cfg.run_dir or default_run_dir(cfg))
        if path in owner:
            raise ConfigError(f"jobs {owner[path]} and {i} of the sweep would both write {path}; give them names "
                              f"(name=...) or a run_dir that uses the swept keys, e.g. run_dir=runs/sweep/ipc${{ipc}}")
        owner[path] = i
    precisions = {cfg.mixed_precision for cfg in configs}
    if len(precisions) > 1:
        raise ConfigError("mixed_precision cannot vary within one sweep (one process, one precision); "
                          "sweep each precision with its own command")


def _terminate(signum, frame):
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
