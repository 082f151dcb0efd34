"""A run's config: composed from configs/ (Hydra config groups, presets, overrides) and checked
whole before anything is written or built (genprior/run.py runs it).

Hydra's compose API builds the config rather than @hydra.main: it leaves the working directory
and logging alone and lets a bad choice be one line with exit code 2. Every key is checked
(`check`): the top-level keys and `eval` here, the data set, the protocol and each component's
own section by the `Options` of whoever reads it. Hydra's own keys (hydra.run.dir, ...) are
refused: genprior never changes directory, and `run_dir=` says where a run writes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from genprior.context import DatasetOptions
from genprior.data import dataset_info
from genprior.errors import ConfigError
from genprior.options import option, spec_from
from genprior.shipped import CONFIG_DIR


def by_ipc(table: dict, *, _root_) -> object:
    """`${by_ipc:{1: 20, 10: 100}}` in a preset: the value under the largest key at or below the run's
    ipc. For a setting whose best value was measured to change with the IPC (configs/glad/mtt.yaml's
    latent lr); a user's plain override of the key replaces the whole table."""
    below = [k for k in table if k <= _root_.ipc]
    if not below:
        raise ValueError(f"by_ipc has no value for ipc={_root_.ipc} (keys: {', '.join(map(str, sorted(table)))})")
    return table[max(below)]


OmegaConf.register_new_resolver("by_ipc", by_ipc, replace=True)  # replace: a module reload stays legal


MIXED_PRECISIONS = ("no", "bf16", "fp16", "fp8")  # Accelerate's; the loop runs no and bf16 (_check_precision)
SECTIONS = ("dataset", "synset", "objective", "protocol", "eval")  # config groups and nested sections


@dataclass
class RunOptions:
    """The top-level keys of configs/config.yaml."""
    ipc: int = option(min=1)
    iterations: int = option(min=0)
    seed: int = option(min=0)
    chunk: int = option(min=1)
    checkpoint_every: int = option(min=1)
    checkpoint_minutes: float = option(min=0)
    log_every: int = option(min=1)
    mixed_precision: str | None = option(choices=MIXED_PRECISIONS)
    threads: int | None = option(min=1)
    name: str | None = option()
    run_dir: str | None = option()
    log_with: str | list[str] | None = option()


@dataclass
class ImageMetricsOptions:
    enabled: bool = option()
    limit: int | None = option(min=1)
    spaces: list[str] = option()
    lpips: bool = option()


@dataclass
class EvalOptions:
    enabled: bool = option()
    baselines: bool | str | list[str] = option()
    every: int = option(min=0)
    curve_protocol: str = option()
    images: ImageMetricsOptions = field(default_factory=ImageMetricsOptions)


@dataclass
class Plan:
    """A run's components, their options checked: what `distill` builds."""
    dataset: DatasetOptions
    synset: type
    synset_options: object
    objective: type
    objective_options: object


def compose(overrides: list[str]) -> DictConfig:
    """The run's config from configs/ and command-line overrides, with one-line errors."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    _refuse_hydra_keys(overrides)
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        try:
            cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
        except MissingConfigException as e:
            raise ConfigError(_missing_choice(str(e))) from None
        except (HydraException, OmegaConfBaseException) as e:
            first = str(e).strip().splitlines()[0]
            keys = ", ".join(OmegaConf.load(CONFIG_DIR / "config.yaml").keys() - {"defaults"})
            raise ConfigError(f"bad override: {first} (top-level keys: {keys}; groups: "
                              f"{', '.join(_groups())}; add new keys with +key=value)") from None
    choices = cfg.hydra.runtime.choices
    chosen = [f"{g}={choices[g]}" for g in _presets() if choices.get(g) is not None]
    if len(chosen) > 1:  # each preset sets synset, objective and their lrs: a second one would silently win
        raise ConfigError(f"one preset at a time, got {' and '.join(chosen)}")
    with open_dict(cfg):
        del cfg["hydra"]
    try:
        OmegaConf.to_container(cfg, resolve=True)  # an interpolation naming no key (`${ipcc}`) fails here
    except OmegaConfBaseException as e:
        where = f" in {e.full_key}" if getattr(e, "full_key", None) else ""
        raise ConfigError(f"bad interpolation{where}: {str(e).strip().splitlines()[0]}") from None
    return cfg


def _refuse_hydra_keys(overrides: list[str]) -> None:
    """hydra.run.dir and friends configure @hydra.main's working directory and logging, which
    this runner does not use (module docstring): accepting them would put outputs elsewhere."""
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            raise ConfigError(f"{o}: Hydra's own keys are not used by genprior.run (it never changes directory); "
                              f"pass run_dir=DIR for where a run writes (in a sweep e.g. run_dir=runs/sweep/ipc${{ipc}})")


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """Hydra's sweep syntax (`pixel=dc,dm ipc=1,10`, `range(1,4)`, `choice(...)`) as the list of
    jobs, the last key varying fastest, as Hydra's basic sweeper orders them."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    _refuse_hydra_keys(overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise ConfigError(f"bad override: {str(e).strip().splitlines()[0]}") from None
    # a plain override passes through as typed (interpolations such as run_dir=runs/${ipc} intact)
    axes = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] if o.is_sweep_override()
            else [o.input_line] for o in parsed]
    return [list(job) for job in itertools.product(*axes)]


def _groups() -> list[str]:
    return sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir())


def _presets() -> list[str]:
    """The preset groups: those configs/config.yaml lists with no default (`pixel: null`, ...)."""
    defaults = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "config.yaml").defaults)
    return [g for entry in defaults if isinstance(entry, dict) for g, v in entry.items() if v is None]


def check(cfg: DictConfig) -> Plan:
    """Every key of the run's config, checked before anything is written or built.

    The top-level keys and `eval` here; the data set, the protocol and each component's
    own section by the schema of whoever reads it. Bad input is one ConfigError."""
    from genprior.evaluate import baseline_names, check_protocol, load_protocol
    from genprior.objectives import OBJECTIVES
    from genprior.synsets import SYNSETS
    from genprior.synsets.base import OptimGroup

    c = OmegaConf.to_container(cfg, resolve=True)
    run = spec_from(RunOptions, {k: v for k, v in c.items() if k not in SECTIONS}, also_valid=SECTIONS,
                    strings=False)
    _check_precision(run.mixed_precision or os.environ.get("ACCELERATE_MIXED_PRECISION") or "no")
    if run.log_with:
        from genprior.trackers import names

        names(run.log_with)
    dataset = spec_from(DatasetOptions, c["dataset"], "dataset", strings=False)
    dataset_info(dataset.name)
    evaluation = spec_from(EvalOptions, c["eval"], "eval", strings=False)
    check_protocol(cfg.protocol)
    baseline_names(evaluation.baselines)
    if evaluation.every:
        load_protocol(evaluation.curve_protocol)
    if evaluation.images.enabled:
        from genprior.metrics.features import inception_path

        inception_path()  # a missing FID network should not wait for the end of distillation
    synset, synset_options = _component(SYNSETS, c["synset"], "synset", ("kind", "optim"))
    for name, group in c["synset"].get("optim", {}).items():
        spec_from(OptimGroup, group, f"synset.optim.{name}", strings=False)
    objective, objective_options = _component(OBJECTIVES, c["objective"], "objective", ("kind",))
    return Plan(dataset, synset, synset_options, objective, objective_options)


def _component(registry: dict, section: dict, what: str, reserved: tuple[str, ...]):
    """(class, its checked Options) for a config section `{kind: ..., **options}`."""
    kind = section.get("kind")
    if kind not in registry:
        raise ConfigError(f"unknown {what}.kind {kind!r}; valid: {', '.join(registry)}")
    cls = registry[kind]
    options = {k: v for k, v in section.items() if k not in reserved}
    return cls, spec_from(cls.Options, options, what, also_valid=reserved, strings=False)


def _check_precision(precision: str) -> None:
    if precision not in MIXED_PRECISIONS:
        raise ConfigError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, got {precision!r}")
    if precision in ("fp16", "fp8"):
        # fp16 needs loss scaling, which the set's backward (DC's second-order gradients, MTT's
        # unrolled student) does not do: its small gradients would underflow to zero. Accelerate
        # runs fp8 without a prepared model as bf16 autocast, so it would only be mislabelled
        raise ConfigError(f"mixed_precision={precision} is not supported (no loss scaling in the distillation "
                          f"backward); valid: no, bf16")


def _missing_choice(message: str) -> str:
    """Hydra's multi-line 'Could not find' message, as one line naming the valid options."""
    groups = _groups()
    for group in groups:
        if f"'{group}/" in message:
            asked = message.split(f"'{group}/", 1)[1].split("'", 1)[0]
            valid = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
            return f"unknown {group} choice {asked!r}; valid: {', '.join(valid)}"
    return f"{message.strip().splitlines()[0]} (config groups: {', '.join(groups)})"


def default_run_dir(cfg: DictConfig) -> Path:
    """runs/<dataset>/<name>-ipc<ipc>-seed<seed>: presets name their runs, so two presets that share a
    synset kind and an objective (minimax=dm, diffusion=dm) never share a directory."""
    name = cfg.name or f"{cfg.synset.kind}-{cfg.objective.kind}"
    return Path("runs") / cfg.dataset.name / f"{name}-ipc{cfg.ipc}-seed{cfg.seed}"
