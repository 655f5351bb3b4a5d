"""Experiment specs: one validated, hashed description of a run.

A spec is a YAML file whose top-level keys are the sections below. It may name one ``base:`` file
(a path relative to itself, which may name its own base); the file's keys are deep-merged over the
base's. Dotted ``key=value`` overrides are applied last (values are parsed as YAML scalars or flow
lists: ``model.lora_rank=16``, ``model.st_window=[5,4,4]``, ``model.st_window=full``,
``tokenizer.checkpoint=null``). Specs hold data only: nothing in them is executed.

Validation reports every problem at once, as ``path: got VALUE - why (allowed)``, including the
checks that span sections (the latent grid follows from the clip and the tokenizer; windows must
tile the latent grid after patchify; conditioning rates need the matching model inputs).

The spec hash is the SHA-256 of the canonical JSON of the resolved spec minus the fields that cannot
change results (:data:`HASH_EXCLUDES`: description, tracking, sweep, logging/checkpoint cadence, loader
workers), cut to 12 hex digits. It names run directories and is stored with every checkpoint, result file
and MLflow run.

    spec = load_spec("experiments/smoke/default.yaml", ["model.lora_rank=4"])
    spec.latent_shape  # (t, h, w) = (1 + (T-1)/f_t, H/f_s, W/f_s)
    spec.hash          # '3f1c0a9e7b21'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from walt_bench.config import Section
from walt_bench.data.config import DataConfig
from walt_bench.denoiser.config import DenoiserConfig, tiles
from walt_bench.diffusion.config import DiffusionConfig
from walt_bench.engine.config import TrainConfig
from walt_bench.errors import SpecError
from walt_bench.evaluation.config import EvalConfig
from walt_bench.identity import digest
from walt_bench.sweeps.config import SweepConfig
from walt_bench.tokenizer.config import TokenizerConfig
from walt_bench.tracking.config import TrackingConfig

# Fields that cannot change a run's results: its prose, where it is logged, how often it reports or
# keeps checkpoints, how many loader processes read the (deterministic) data.
HASH_EXCLUDES = (
    "description",
    "tracking",
    "sweep",
    "train.log_every",
    "train.ckpt_every",
    "train.keep_last",
    "data.num_workers",
    "tokenizer.train.log_every",
    "tokenizer.train.ckpt_every",
    "tokenizer.train.keep_last",
)


class RunConfig(Section):
    name: str = Field(
        "walt",
        description="A label for people (MLflow run names, printed summaries). Not part of any stage identity: "
        "run directories are <out_dir>/<stage>-<identity> (walt_bench/identity.py).",
    )
    seed: int = Field(0, description="Global seed; each rank derives its own from it.")
    out_dir: str = Field("runs", description="Parent folder of every stage's directory.")
    scale: str = Field(
        "paper",
        description="The scale overlay applied to this spec (`--scale smoke|small|paper`, experiments/scales/); "
        "recorded for reports and tags, not part of any identity (the overlay's fields are).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = cuda when available, else cpu."
    )


class ExperimentSpec(Section):
    description: str = Field("", description="What this spec reproduces (e.g. 'Table 3d, r=16').")
    data: DataConfig = Field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: DenoiserConfig = Field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    # -- derived values -------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(t, h, w) of the tokenizer's latents: 1 + T/f_t latent frames (the first frame alone, §4.1)."""
        return latent_shape(self.data.num_frames, self.data.height, self.data.width, self.tokenizer)

    @property
    def hash(self) -> str:
        return spec_hash(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: list[str] | tuple[str, ...]) -> ExperimentSpec:
        """A new validated spec with dotted ``key=value`` overrides applied."""
        raw = self.to_dict()
        problems = apply_overrides(raw, overrides)
        return _validate(raw, problems, source="overrides")


def latent_shape(num_frames: int, height: int, width: int, tok: TokenizerConfig) -> tuple[int, int, int]:
    return (1 + (num_frames - 1) // tok.f_t, height // tok.f_s, width // tok.f_s)


def spec_hash(spec_dict: dict[str, Any]) -> str:
    """12-hex-digit SHA-256 of the canonical JSON of a resolved spec without :data:`HASH_EXCLUDES`."""
    kept = json.loads(json.dumps(spec_dict))
    for path in HASH_EXCLUDES:
        *parents, leaf = path.split(".")
        node = kept
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return digest(kept)


# -- loading ------------------------------------------------------------------------------------
def load_spec(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    scale: str | None = None,
) -> ExperimentSpec:
    """Load, merge (``base:``), apply the scale overlay, override and validate a spec; raise :class:`SpecError`
    listing all problems.

    ``path=None`` gives the defaults (the paper's UCF-101 settings). ``scale`` names an overlay
    (``smoke``, ``small``; ``paper`` or None = the spec as written) or a YAML file; it is merged over the spec
    and under the overrides (see :func:`scale_overlay`).
    """
    source = str(path) if path is not None else "defaults"
    raw = load_yaml_tree(Path(path)) if path is not None else {}
    if scale is not None and scale != "paper":
        raw = deep_merge(raw, load_yaml_tree(scale_overlay(scale, path)))
    if scale is not None:
        raw = deep_merge(
            raw, {"run": {"scale": Path(scale).stem if scale.endswith((".yaml", ".yml")) else scale}}
        )
    problems = apply_overrides(raw, overrides)
    return _validate(raw, problems, source=source if scale is None else f"{source} --scale {scale}")


SCALES = ("smoke", "small", "paper")


def scale_overlay(scale: str, spec_path: str | Path | None = None) -> Path:
    """The overlay file of ``scale``: a ``.yaml`` path as given, else ``scales/<scale>.yaml`` in the spec's
    ``experiments/`` tree (the first ``scales/`` folder above the spec), in ``./experiments/``, or in this
    checkout's ``experiments/``."""
    if scale.endswith((".yaml", ".yml")):
        return Path(scale)
    roots = [p / "scales" for p in Path(spec_path).resolve().parents] if spec_path is not None else []
    roots += [Path("experiments/scales"), Path(__file__).resolve().parents[1] / "experiments" / "scales"]
    for root in roots:
        if (root / f"{scale}.yaml").is_file():
            return root / f"{scale}.yaml"
    raise SpecError(
        [
            f"--scale: got {scale!r} - no experiments/scales/{scale}.yaml; scales are {', '.join(SCALES)} "
            "or a path to an overlay .yaml"
        ],
        str(spec_path or "defaults"),
    )


def load_yaml_tree(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML spec and, recursively, its ``base:`` file; the file's keys win."""
    path = path.expanduser()
    if not path.is_file():
        where = f" (base of {_seen[-1]})" if _seen else ""
        raise SpecError([f"spec file {path}{where} does not exist; give the path of a YAML spec"], str(path))
    resolved = path.resolve()
    if resolved in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, resolved))
        raise SpecError([f"base: cycle {chain}; a spec cannot inherit from itself"], str(path))
    data = parse_spec_yaml(path)
    if not isinstance(data, dict):
        raise SpecError([f"top level must be a mapping of sections, got {type(data).__name__}"], str(path))
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise SpecError([f"base: got {base!r} - must be one file path (relative to this file)"], str(path))
    parent = load_yaml_tree(path.parent / base, (*_seen, resolved))
    return deep_merge(parent, data)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain data only: a ``!!python/...`` tag is an error, never code) that also rejects
    a key given twice in one mapping, which plain YAML loaders silently resolve to the last value."""


def _construct_mapping(loader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # the base constructor reports unhashable keys
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (line {seen[key]} and line {line}); YAML keeps only the last, so write it once",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_spec_yaml(path: Path) -> Any:
    """The data of one YAML spec file; :class:`SpecError` naming the file for bytes that are not UTF-8, an empty
    file, invalid YAML, a duplicate key or a tag that is not plain data (specs never execute code)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError([f"cannot read the spec file: {exc.strerror or exc}"], str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            [
                f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}); save the spec as UTF-8"
            ],
            str(path),
        ) from None
    if not text.strip() or all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()):
        raise SpecError(
            [
                "the file is empty (or only comments), which would silently mean the paper defaults; write the "
                "sections you mean, or `base: <file>` to inherit one, or `{}` for the defaults on purpose"
            ],
            str(path),
        )
    loader = _StrictLoader(text)
    loader.name = str(path)  # error marks say `in "<file>", line N` instead of "<unicode string>"
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        problem = str(exc)
        if "could not determine a constructor for the tag" in problem:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = (
                f"{where}tag {str(getattr(exc, 'problem', '')).split('tag ')[-1]} is not allowed: a spec holds plain "
                "data (mappings, lists, strings, numbers), nothing in it is constructed or executed"
            )
        raise SpecError([f"not valid YAML: {problem}"], str(path)) from None
    finally:
        loader.dispose()


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> list[str]:
    """Apply ``a.b.c=value`` overrides in place; return the malformed ones as problems."""
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            problems.append(
                f"override {item!r}: expected key=value with a dotted key, e.g. model.lora_rank=16"
            )
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return problems


# -- validation ---------------------------------------------------------------------------------
def _validate(raw: dict[str, Any], problems: list[str], source: str) -> ExperimentSpec:
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        problems = problems + [_describe(err) for err in exc.errors()]
        # Still run the cross-section checks on the sections that are valid on their own, so one
        # pass lists every problem.
        problems += cross_field_problems(_valid_sections(raw))
        raise SpecError(problems, source) from None
    problems = problems + cross_field_problems(spec)
    if problems:
        raise SpecError(problems, source)
    return spec


def _valid_sections(raw: dict[str, Any]) -> dict[str, Section]:
    sections: dict[str, Section] = {}
    for name, field in ExperimentSpec.model_fields.items():
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, Section)):
            continue
        values = raw.get(name, {})
        try:
            sections[name] = annotation.model_validate(values)
        except ValidationError as exc:
            # Unknown keys hide no values: drop them and check the rest.
            errors = exc.errors()
            if isinstance(values, dict) and all(e["type"] == "extra_forbidden" for e in errors):
                unknown = {e["loc"][0] for e in errors}
                kept = {k: v for k, v in values.items() if k not in unknown}
                sections[name] = annotation.model_validate(kept)
    return sections


def _describe(err: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        allowed = _allowed_fields(err["loc"][:-1])
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown field{hint}"
    given = err.get("input")
    return f"{path}: got {given!r} - {err['msg']}"


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    model: Any = ExperimentSpec
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def cross_field_problems(spec: ExperimentSpec | dict[str, Section]) -> list[str]:
    """Checks that span sections; each problem names the field to change.

    Accepts a spec or, while other fields are invalid, the sections that validated on their own;
    a check whose sections are missing is skipped.
    """
    sec = spec if isinstance(spec, dict) else {k: getattr(spec, k) for k in ExperimentSpec.model_fields}
    d, tok, m, diff = (sec.get(k) for k in ("data", "tokenizer", "model", "diffusion"))
    problems: list[str] = []
    if d is not None and d.image_ratio > 0 and not d.image_root:
        problems.append(
            f"data.image_ratio: got {d.image_ratio} - joint image-video training needs data.image_root"
        )
    if d is not None and m is not None and d.image_ratio > 0 and m.text_dim and m.cross_attention == "all":
        problems.append(
            "model.cross_attention: got 'all' - joint image-video training uses spatial-window cross-attention "
            "only (§4.3), so image stacks never mix frames; set model.cross_attention=spatial"
        )
    if diff is not None and diff.guidance_scale != 1 and diff.cond_drop_prob == 0:
        problems.append(
            f"diffusion.guidance_scale: got {diff.guidance_scale} - classifier-free guidance needs an unconditional "
            "branch, but diffusion.cond_drop_prob=0 never trains one (no null class, no zero c_fp); train with "
            "diffusion.cond_drop_prob>0 (e.g. 0.1) or sample with guidance_scale=1"
        )
    if d is not None and diff is not None and d.image_ratio > 0 and diff.latent_source == "cache":
        problems.append(
            f"data.image_ratio: got {d.image_ratio} - joint image-video training mixes image stacks into every "
            "batch, which a latent cache of the video split does not hold; set diffusion.latent_source=encode"
        )
    if m is not None and diff is not None and m.lowres_condition and diff.latent_source == "cache":
        problems.append(
            "diffusion.latent_source: got 'cache' - a super-resolution stage (model.lowres_condition) encodes each "
            "clip and its 2x-downsampled copy on the fly; set diffusion.latent_source=encode"
        )
    if m is not None and diff is not None:
        if diff.p_sc > 0 and not getattr(m, "self_condition", True):
            problems.append(f"diffusion.p_sc: got {diff.p_sc} - needs model.self_condition=true")
        if diff.p_fp > 0 and not getattr(m, "frame_condition", False):
            problems.append(f"diffusion.p_fp: got {diff.p_fp} - needs model.frame_condition=true")
    if d is None or tok is None:
        return problems
    geometry = []
    if d.num_frames > 1 and (d.num_frames - 1) % tok.f_t:
        geometry.append(
            f"data.num_frames: got {d.num_frames} - a video of 1+T frames needs T divisible by "
            f"tokenizer.f_t={tok.f_t} (e.g. {1 + tok.f_t * -(-(d.num_frames - 1) // tok.f_t)})"
        )
    for name, size in (("height", d.height), ("width", d.width)):
        if size % tok.f_s:
            geometry.append(f"data.{name}: got {size} - must be divisible by tokenizer.f_s={tok.f_s}")
    if geometry or m is None:
        return problems + geometry

    t, h, w = latent_shape(d.num_frames, d.height, d.width, tok)
    if diff is not None and diff.p_fp > 0 and t < 2:
        problems.append(
            f"diffusion.p_fp: got {diff.p_fp} - frame prediction needs video latents (t>=2), got t={t}"
        )
    p = m.patch_size
    if h % p or w % p:
        problems.append(f"model.patch_size: got {p} - must divide the latent frame {h}x{w}")
        return problems
    grid = (t, h // p, w // p)
    where = f"the patch grid {'x'.join(map(str, grid))} (latent {t}x{h}x{w}, patch {p})"
    if m.spatial_window is not None:
        if m.spatial_window[0] != 1:
            problems.append(
                f"model.spatial_window: got {list(m.spatial_window)} - spatial windows span 1 frame"
            )
        if not tiles(m.spatial_window, grid):
            problems.append(
                f"model.spatial_window: got {list(m.spatial_window)} - must tile {where}; "
                f"e.g. [1, {grid[1]}, {grid[2]}] (or null for the whole frame)"
            )
    if m.st_window != "full" and not tiles(m.st_window, grid):
        problems.append(f"model.st_window: got {list(m.st_window)} - must tile {where}, or be 'full'")
    return problems


def spec_fields(node: BaseModel | None = None, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted path, description, default) of every leaf field: the reference table of ``spec fields``.

    Defaults are read from a default instance, so nested sections that set their own defaults (e.g.
    ``tokenizer.train``) show those, not the class defaults.
    """
    node = ExperimentSpec() if node is None else node
    rows = []
    for name, field in type(node).model_fields.items():
        value = getattr(node, name)
        if isinstance(value, BaseModel):
            if field.description:  # a nested section that says what its defaults are (tokenizer.train)
                rows.append((f"{prefix}{name}", field.description, "(section)"))
            rows.extend(spec_fields(value, f"{prefix}{name}."))
        else:
            rows.append((f"{prefix}{name}", field.description or "", value))
    return rows
