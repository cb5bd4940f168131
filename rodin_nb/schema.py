"""The model's request schema and the request validator.

The schema has the shape ``GET /v1/models/{modelId}`` returns (``model.inputs[]``). A snapshot for
``model_rodin-hyper3d`` ships in ``rodin_nb/data`` so validation and forms work offline; a client
prefers the live schema and falls back to the snapshot with a note (see ``Client.schema``).

:class:`RodinRequest` validates parameters against a schema and raises one :class:`ValidationError`
listing every problem, before any request is sent. Parameter names are the wire names.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import numbers
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import ValidationError
from .rules import canonical_json, draw_seed, forced_quality, hyper_allowed

__all__ = [
    "DEFAULT_MODEL_ID",
    "ImageInput",
    "InputSpec",
    "ModelSchema",
    "RodinRequest",
    "RodinWarning",
    "canonical_json",
]

DEFAULT_MODEL_ID = "model_rodin-hyper3d"
ASSET_ID_PREFIX = "asset_"

InputType = Literal[
    "string", "number", "boolean", "file", "file_array", "string_array", "number_array",
    "model", "model_array", "inputs_array",
]  # fmt: skip


class RodinWarning(UserWarning):
    """A request the service accepts but that will not do what it says (e.g. Sketch overrides)."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One entry of ``model.inputs``; unknown keys are kept in ``raw``."""

    name: str
    type: str
    default: Any = None
    allowed_values: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    kind: str | None = None
    required: Mapping[str, Any] | None = None
    cost_impact: bool = False
    label: str | None = None
    description: str | None = None
    hint: str | None = None
    placeholder: str | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> InputSpec:
        allowed = data.get("allowedValues")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            default=data.get("default"),
            allowed_values=tuple(allowed) if allowed is not None else None,
            min=data.get("min"),
            max=data.get("max"),
            step=data.get("step"),
            min_length=_opt_int(data.get("minLength")),
            max_length=_opt_int(data.get("maxLength")),
            kind=data.get("kind"),
            required=data.get("required"),
            cost_impact=bool(data.get("costImpact", False)),
            label=data.get("label"),
            description=data.get("description"),
            hint=data.get("hint"),
            placeholder=data.get("placeholder"),
            raw=dict(data),
        )

    @property
    def has_default(self) -> bool:
        return "default" in self.raw

    @property
    def is_array(self) -> bool:
        return self.type.endswith("_array")

    @property
    def is_integer(self) -> bool:
        """Numbers with an integral step (seed) take integers only."""
        return self.type == "number" and self.step is not None and float(self.step).is_integer()

    def problems(self, value: Any) -> list[str]:
        """What is wrong with ``value`` for this input on its own (cross-field rules aside)."""
        return _check_value(self, value)[1]

    def item_count_bounds(self) -> tuple[int | None, int | None]:
        """Item-count bounds of an array input.

        The SDK documents ``minLength``/``maxLength`` as item counts for some array types and
        ``min``/``max`` as applying to array types too; either may carry the limit, so the tighter wins.
        """
        lows = [int(v) for v in (self.min, self.min_length) if v is not None]
        highs = [int(v) for v in (self.max, self.max_length) if v is not None]
        return (max(lows) if lows else None, min(highs) if highs else None)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclasses.dataclass(frozen=True)
class ModelSchema:
    """A model's inputs, in the order the service lists them.

    ``source`` is ``"live"`` (read from the service) or ``"snapshot"`` (bundled); ``note`` says why a
    snapshot is in use.
    """

    model_id: str
    name: str
    inputs: tuple[InputSpec, ...]
    source: Literal["live", "snapshot"] = "live"
    note: str | None = None
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_response(
        cls, body: Mapping[str, Any], *, source: Literal["live", "snapshot"] = "live", note: str | None = None
    ) -> ModelSchema:
        """Build from a ``GET /v1/models/{id}`` body (``{"model": {...}}``) or the bare model object."""
        model = body.get("model", body)
        inputs = tuple(InputSpec.from_wire(item) for item in model.get("inputs") or [])
        if not inputs:
            raise ValueError(f"model {model.get('id')!r} lists no inputs; cannot build a request schema")
        return cls(
            model_id=str(model["id"]),
            name=str(model.get("name") or model["id"]),
            inputs=inputs,
            source=source,
            note=note,
            raw=dict(model),
        )

    @classmethod
    def snapshot(cls, model_id: str = DEFAULT_MODEL_ID, *, note: str | None = None) -> ModelSchema:
        """The schema bundled with rodin_nb, for offline use."""
        return cls.from_response(snapshot_response(model_id), source="snapshot", note=note)

    def __getitem__(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(spec.name == name for spec in self.inputs)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def cost_inputs(self) -> list[str]:
        """Inputs marked ``costImpact``: changing them changes the price."""
        return [spec.name for spec in self.inputs if spec.cost_impact]

    def defaults(self) -> dict[str, Any]:
        return {spec.name: spec.default for spec in self.inputs if spec.has_default}

    def _repr_markdown_(self) -> str:
        rows = ["| name | type | default | allowed | notes |", "|---|---|---|---|---|"]
        for s in self.inputs:
            allowed = ", ".join(map(str, s.allowed_values)) if s.allowed_values else _range_text(s)
            rows.append(
                f"| `{s.name}` | {s.type} | {s.default if s.has_default else ''} | {allowed} | "
                f"{s.description or ''} |"
            )
        head = f"**{self.name}** (`{self.model_id}`, {self.source} schema)"
        return head + (f"\n\n_{self.note}_" if self.note else "") + "\n\n" + "\n".join(rows)


def _range_text(spec: InputSpec) -> str:
    if spec.type == "number" and (spec.min is not None or spec.max is not None):
        return f"{_num(spec.min)}..{_num(spec.max)}" + (" (integer)" if spec.is_integer else "")
    if spec.is_array:
        low, high = spec.item_count_bounds()
        return f"{low or 0}..{high if high is not None else 'any'} items"
    return ""


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def snapshot_response(model_id: str = DEFAULT_MODEL_ID) -> dict[str, Any]:
    """The bundled ``GET /v1/models/{id}`` response body (``{"model": {...}}``), a fresh copy."""
    path = resources.files("rodin_nb") / "data" / f"{model_id}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyError(f"no bundled schema snapshot for model {model_id!r}") from None
    data.pop("_snapshot", None)
    return data


# --- images ---------------------------------------------------------------------------------------

ImageInput = Any  # an asset id, a path (str or Path), bytes, or a PIL image


def is_asset_id(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ASSET_ID_PREFIX) and len(value) > len(ASSET_ID_PREFIX)


def _is_pil_image(value: Any) -> bool:
    # Checked by duck type so validating a request never imports Pillow.
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "size")


def image_problem(value: Any) -> str | None:
    """Why ``value`` cannot be used as an image input, or None if it can."""
    if is_asset_id(value):
        return None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if not path.is_file():
            return (
                f"{str(value)!r} is neither an asset id ('asset_...') nor an existing file; "
                "give an asset id, a file path, bytes or a PIL image"
            )
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None if len(value) else "empty bytes; give the image file's content"
    if _is_pil_image(value):
        return None
    return f"a {type(value).__name__} is not an image; give an asset id, a file path, bytes or a PIL image"


def image_fingerprint(value: Any) -> str:
    """A stable identity for an image input: its asset id, or ``sha256:<hex>`` of a local image's bytes."""
    if is_asset_id(value) or (isinstance(value, str) and value.startswith("sha256:")):
        return str(value)  # an asset id, or already a fingerprint (a logged run never uploaded)
    return "sha256:" + hashlib.sha256(image_bytes(value)[0]).hexdigest()


def image_bytes(value: Any) -> tuple[bytes, str]:
    """The encoded bytes of a local image and a file name for the upload."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        return path.read_bytes(), path.name
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "image.png"
    if _is_pil_image(value):
        import io

        buffer = io.BytesIO()
        # PNG with fixed settings so the same picture always hashes (and caches) the same.
        value.save(buffer, format="PNG", optimize=False)
        return buffer.getvalue(), "image.png"
    raise TypeError(f"not an image input: {type(value).__name__}")


# --- validation -----------------------------------------------------------------------------------

_MISSING = object()
_CAMEL_RE = re.compile(r"_([a-z])")


def _suggest(name: str, known: Iterable[str]) -> str:
    known = list(known)
    folded = {k.lower().replace("_", ""): k for k in known}
    exact = folded.get(name.lower().replace("_", ""))
    if exact is None:
        camel = _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)
        exact = camel if camel in known else None
    guess = exact or next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)
    allowed = ", ".join(known)
    hint = f"did you mean {guess!r}? " if guess else ""
    return f"unknown parameter; {hint}allowed: {allowed}"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_ from a DataFrame row
        return bool(value)
    return None


def _show(value: Any, width: int = 80) -> str:
    """A value for an error message: huge integers by size (their repr may be refused or slow), long
    reprs shortened, so a message never fails or floods."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value).bit_length() > 256:
        return f"an integer of about {int(int(value).bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _unsendable(text: str) -> str | None:
    """Why a string cannot go into a JSON request body as UTF-8 (a lone surrogate), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a character that cannot be sent (a lone surrogate {text[exc.start]!r} at {exc.start})"
        )
    return None


def _check_value(spec: InputSpec, value: Any) -> tuple[Any, list[str]]:
    """Normalise one value to its wire form and list what is wrong with it."""
    if spec.type == "string":
        if not isinstance(value, str):
            return value, [
                f"must be a string, got {type(value).__name__} {_show(value)}" + _allowed_suffix(spec)
            ]
        if not value.strip():
            return value, ["must not be empty" + _allowed_suffix(spec)]
        bad = _unsendable(value)
        if bad is not None:
            return value, [bad]
        if spec.allowed_values is not None and value not in spec.allowed_values:
            close = difflib.get_close_matches(value, [str(v) for v in spec.allowed_values], n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return value, [f"{_show(value)} is not allowed{hint}; allowed: {_join(spec.allowed_values)}"]
        problems = []
        if spec.min_length is not None and len(value) < spec.min_length:
            problems.append(f"must have at least {spec.min_length} characters")
        if spec.max_length is not None and len(value) > spec.max_length:
            problems.append(f"has {len(value)} characters; at most {spec.max_length} allowed")
        return value, problems
    if spec.type == "boolean":
        flag = _as_bool(value)
        if flag is None:
            return value, [f"must be true or false, got {type(value).__name__} {_show(value)}"]
        return flag, []
    if spec.type == "number":
        return _check_number(spec, value)
    if spec.type in ("file", "file_array"):
        return _check_images(spec, value)
    if spec.type in ("string_array", "number_array"):
        if not isinstance(value, (list, tuple)):
            return value, [f"must be a list, got {type(value).__name__}"]
        return list(value), []
    return value, []


def _check_number(spec: InputSpec, value: Any) -> tuple[Any, list[str]]:
    bounds = f"{_num(spec.min)}..{_num(spec.max)}" if spec.min is not None or spec.max is not None else ""
    what = "an integer" if spec.is_integer else "a number"
    allowed = f"; allowed: {what}" + (f" in {bounds}" if bounds else "")
    if not _is_number(value):
        return value, [f"must be {what}, got {type(value).__name__} {_show(value)}{allowed}"]
    if spec.is_integer:
        # An int is whole however large (float() of 10**400 overflows); only non-ints are checked.
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            return value, [f"{_show(value)} is not an integer{allowed}"]
        value = int(value)
    else:
        value = float(value) if not isinstance(value, numbers.Integral) else int(value)
    if spec.allowed_values is not None and value not in spec.allowed_values:
        return value, [f"{_show(value)} is not allowed; allowed: {_join(spec.allowed_values)}"]
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        return value, [f"{_show(value)} is out of range{allowed}"]
    return value, []


def _check_images(spec: InputSpec, value: Any) -> tuple[Any, list[str]]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if spec.type == "file" and len(items) != 1:
        return items, ["takes exactly one image"]
    problems = []
    low, high = spec.item_count_bounds()
    if high is not None and len(items) > high:
        problems.append(f"{len(items)} images given; at most {high} allowed")
    if low is not None and 0 < len(items) < low:
        problems.append(f"{len(items)} images given; at least {low} needed")
    for index, item in enumerate(items):
        reason = image_problem(item)
        if reason:
            problems.append(f"[{index}] {reason}")
    return (items[0] if spec.type == "file" else items), problems


def _allowed_suffix(spec: InputSpec) -> str:
    return f"; allowed: {_join(spec.allowed_values)}" if spec.allowed_values else ""


def _join(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _is_defined(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, _MISSING)
    if value is _MISSING or value is None:
        return False
    return not (isinstance(value, (list, tuple, str)) and len(value) == 0)


def _required_problems(spec: InputSpec, params: Mapping[str, Any]) -> list[str]:
    """Apply the ``required`` rules (always / ifDefined / ifNotDefined / conditional) to a missing input."""
    rule = spec.required or {}
    if rule.get("always"):
        return ["is required"]
    problems = []
    for other, message in (rule.get("ifNotDefined") or {}).items():
        if not _is_defined(params, other):
            problems.append(str(message) if message else f"is required when {other!r} is not given")
    for other, message in (rule.get("ifDefined") or {}).items():
        if _is_defined(params, other):
            problems.append(str(message) if message else f"is required when {other!r} is given")
    conditional = rule.get("conditional")
    if conditional:
        matches = [
            params.get(other) in list(values) for other, values in (conditional.get("values") or {}).items()
        ]
        hit = all(matches) if conditional.get("operator", "and") == "and" else any(matches)
        if matches and hit:
            problems.append(f"is required when {conditional.get('values')}")
    return problems


def _cross_field_problems(
    given: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Rodin's own rules between fields (API_CONTRACT.md §6.1), as errors or warnings by certainty.

    - Sketch never uses hyper mode (two sources agree): asking for it is an error.
    - Sketch forces quality=medium (API_CONTRACT.md §6, not contradicted): an explicit other quality is a
      warning and the request is sent and logged as medium, so Sketch runs that differ only in an
      ignored quality are one request (answered from the log, never paid twice).
    - Sketch and Shaded: the sources conflict, so only a warning.
    - conditionMode only matters with several images: a warning.

    The Sketch hyper and quality rules themselves live in :mod:`rodin_nb.rules`, shared with the sandbox.
    """
    errors: list[tuple[str, str]] = []
    notes: list[str] = []
    if params.get("useHyper") is True and not hyper_allowed(params):
        errors.append(("useHyper", "Sketch tier never uses hyper mode; set useHyper=False or tier='Regular'"))
    forced = forced_quality(params)
    if forced is not None and "quality" in given and params.get("quality") not in (None, forced):
        notes.append(
            f"tier={params['tier']!r} forces quality={forced!r}; quality={params['quality']!r} is sent as "
            f"{forced!r} (use tier='Regular' to choose the quality)"
        )
    if params.get("tier") == "Sketch" and params.get("material") == "Shaded":
        notes.append(
            "tier='Sketch' may force material='PBR' (Hyper3D's sources disagree); the result may "
            "be PBR although Shaded was asked"
        )
    images = params.get("images") or []
    if "conditionMode" in given and params.get("conditionMode") == "fuse" and len(images) < 2:
        notes.append("conditionMode='fuse' only changes anything with two or more images")
    return errors, notes


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 0)


class RodinRequest:
    """Validated parameters of one Rodin generation, under their wire names.

    Parameters
    ----------
    schema : ModelSchema, optional
        The schema to validate against; the bundled snapshot by default.
    **params
        Model inputs by wire name (``prompt``, ``images``, ``conditionMode``, ``material``, ``quality``,
        ``useHyper``, ``tier``, ``TAPose``, ``seed``). ``None`` means "not given".

    Raises
    ------
    ValidationError
        Listing every problem, each naming the field and what is allowed.

    Notes
    -----
    Defaults are made explicit and a missing seed is drawn here, so :meth:`to_body` is exactly what is
    sent and every run can be reproduced from its logged parameters.
    """

    def __init__(self, *, schema: ModelSchema | None = None, **params: Any) -> None:
        if schema is not None and not isinstance(schema, ModelSchema):
            raise ValidationError(
                [("schema", f"must be a ModelSchema (client.schema), or None; got {type(schema).__name__}")],
                context="request",
            )
        self.schema = schema or _snapshot_schema()
        # None and an empty list mean "not given": a form's empty image picker sends no images at all.
        given = {name: value for name, value in params.items() if not _is_blank(value)}
        problems: list[tuple[str, str]] = []
        normalised: dict[str, Any] = {}
        for name, value in given.items():
            if name not in self.schema:
                problems.append((name, _suggest(name, self.schema.names)))
                continue
            wire_value, issues = _check_value(self.schema[name], value)
            problems.extend((name, issue) for issue in issues)
            normalised[name] = wire_value
        # A field given with a bad value counts as given for the required rules, so one mistake
        # (an empty prompt) is reported once, not again as "images required".
        bad_fields = {field for field, _ in problems}
        defined = {**normalised, **{name: "<given>" for name in bad_fields if name in normalised}}
        for spec in self.schema.inputs:
            if spec.name not in normalised and spec.name not in given:
                for issue in _required_problems(spec, defined):
                    problems.append((spec.name, issue))
        full = {**self.schema.defaults(), **normalised}
        errors, notes = _cross_field_problems(given, full)
        forced = forced_quality(full)
        if forced is not None and "quality" in self.schema:
            # Sketch always runs at medium quality: send and record what the service will do.
            full["quality"] = forced
        problems.extend(errors)
        if problems:
            raise ValidationError(problems)
        for note in notes:
            warnings.warn(note, RodinWarning, stacklevel=2)
        if "seed" in self.schema and "seed" not in full:
            # Drawn here and sent, so the run can be reproduced from its row.
            full["seed"] = draw_seed()
            self.seed_drawn = True
        else:
            self.seed_drawn = False
        # Keep the schema's order so bodies and log rows read the same way every time.
        self._params = {name: full[name] for name in self.schema.names if name in full}
        self.given = frozenset(given)

    @classmethod
    def logged(cls, schema: ModelSchema, params: Mapping[str, Any]) -> RodinRequest:
        """A request exactly as the run log recorded it, without validating it again.

        Logged parameters were valid when sent; re-validating could fail after a schema change, or on
        image fingerprints of a run that crashed before its upload.
        """
        request = cls.__new__(cls)
        request.schema = schema
        request._params = dict(params)
        request.given = frozenset(params)
        request.seed_drawn = False
        return request

    # --- reading -------------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter with defaults filled in (images as given: ids, paths, bytes or PIL images)."""
        return dict(self._params)

    @property
    def seed(self) -> int | None:
        seed = self._params.get("seed")
        return int(seed) if seed is not None else None

    @property
    def images(self) -> list[Any]:
        return list(self._params.get("images") or [])

    @property
    def local_images(self) -> list[Any]:
        """Images that still need uploading (paths, bytes, PIL images)."""
        return [image for image in self.images if not is_asset_id(image)]

    def identity(self) -> dict[str, Any]:
        """The request as a JSON-able dict, local images replaced by their content fingerprint."""
        ident = dict(self._params)
        if "images" in ident:
            ident["images"] = [image_fingerprint(image) for image in ident["images"]]
        return ident

    @property
    def params_hash(self) -> str:
        """A stable hash of model id + parameters + seed: equal requests hash equal."""
        payload = canonical_json({"model": self.schema.model_id, "params": self.identity()})
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def to_body(self) -> dict[str, Any]:
        """The exact JSON body for ``POST /generate/custom/{modelId}``.

        Raises ``ValueError`` while local images are not yet uploaded (the client uploads them first).
        """
        pending = self.local_images
        if pending:
            raise ValueError(
                f"{len(pending)} local image(s) must be uploaded first; client.generate() does "
                "this, or use client.upload_image() and pass the asset ids"
            )
        return dict(self._params)

    # --- deriving ------------------------------------------------------------------------------

    def replace(self, **changes: Any) -> RodinRequest:
        """A new request with some parameters changed (``None`` removes one); validated again.

        Only what was given explicitly (and the seed) carries over, so defaults that depend on other
        fields (Sketch's quality) follow the change.
        """
        kept = {name: self._params[name] for name in self.given | {"seed"} if name in self._params}
        return RodinRequest(schema=self.schema, **{**kept, **changes})

    def with_images(self, asset_ids: list[str]) -> RodinRequest:
        """The same request with its images replaced by uploaded asset ids (the seed is kept)."""
        return self.replace(images=list(asset_ids))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RodinRequest):
            return NotImplemented
        return self.schema.model_id == other.schema.model_id and self.identity() == other.identity()

    def __hash__(self) -> int:
        return hash(self.params_hash)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self._params.items())
        return f"RodinRequest({shown})"


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if _is_pil_image(value):
        return f"<PIL image {value.size[0]}x{value.size[1]}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


_SNAPSHOT: ModelSchema | None = None


def _snapshot_schema() -> ModelSchema:
    global _SNAPSHOT
    if _SNAPSHOT is None:
        _SNAPSHOT = ModelSchema.snapshot()
    return _SNAPSHOT
