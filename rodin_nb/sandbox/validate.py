"""Server-side check of a generate body against the model's ``inputs`` schema.

Written independently of the client's validator on purpose: the sandbox plays the part of the real
service, so when the two disagree the tests catch it instead of both sides sharing one bug. It is
generic over the schema's vocabulary (``type``, ``allowedValues``, ``min``/``max``, ``step``,
``minLength``/``maxLength``, ``kind``, ``required``) rather than hard-coding Rodin's inputs, so a new
snapshot with new inputs is checked without code changes.

Every problem is collected (unknown names, then bad values in schema order, then missing inputs); the
HTTP layer reports the first as ``{"message", "field"}`` and all of
them under ``errors``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Problem", "validate_body"]

#: Looks up an asset id and returns its kind (``"image"``, ``"3d"``...) or None when it does not exist.
AssetKindLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: the field it concerns and a message naming what is allowed."""

    field: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def _is_number(v: Any) -> bool:
    # JSON booleans arrive as Python bools, which are ints: a bool is never a number here.
    # Any int is finite (and math.isfinite would overflow converting a 310-digit one to float).
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def _fmt(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**30:
        return f"an integer of {len(str(abs(v)))} digits"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return repr(v) if isinstance(v, str) else str(v)


def _allowed(spec: Mapping[str, Any]) -> str:
    return ", ".join(_fmt(a) for a in spec["allowedValues"])


def _check_string(name: str, spec: Mapping[str, Any], v: Any) -> list[Problem]:
    if not isinstance(v, str):
        return [Problem(name, f"'{name}' must be a string, got {_json_type(v)}")]
    if not v.strip():
        return [Problem(name, f"'{name}' must not be empty; omit it instead")]
    if "allowedValues" in spec and v not in spec["allowedValues"]:
        return [Problem(name, f"'{name}' must be one of {_allowed(spec)}; got {v!r}")]
    if "minLength" in spec and len(v) < spec["minLength"]:
        return [Problem(name, f"'{name}' must be at least {_fmt(spec['minLength'])} characters long")]
    if "maxLength" in spec and len(v) > spec["maxLength"]:
        limit = _fmt(spec["maxLength"])
        return [Problem(name, f"'{name}' must be at most {limit} characters long (got {len(v)})")]
    return []


def _check_number(name: str, spec: Mapping[str, Any], v: Any) -> list[Problem]:
    bounds = ""
    if "min" in spec and "max" in spec:
        bounds = f" between {_fmt(spec['min'])} and {_fmt(spec['max'])}"
    integral = spec.get("step") == 1
    what = "an integer" if integral else "a number"
    if not _is_number(v):
        return [Problem(name, f"'{name}' must be {what}{bounds}, got {_json_type(v)}")]
    # One problem per field: -0.5 for seed is reported once, as "must be an integer between ...".
    if integral and isinstance(v, float) and not v.is_integer():
        return [Problem(name, f"'{name}' must be an integer{bounds}; got {v}")]
    if ("min" in spec and v < spec["min"]) or ("max" in spec and v > spec["max"]):
        return [Problem(name, f"'{name}' must be{bounds or ' in range'}; got {_fmt(v)}")]
    if "allowedValues" in spec and v not in spec["allowedValues"]:
        return [Problem(name, f"'{name}' must be one of {_allowed(spec)}; got {_fmt(v)}")]
    return []


def _check_boolean(name: str, spec: Mapping[str, Any], v: Any) -> list[Problem]:
    if not isinstance(v, bool):
        return [Problem(name, f"'{name}' must be true or false, got {_json_type(v)}")]
    return []


def _check_asset_id(name: str, kind: str, v: Any, lookup: AssetKindLookup, where: str) -> list[Problem]:
    if not isinstance(v, str) or not v.strip():
        return [Problem(name, f"{where} must be a non-empty asset id string, got {_json_type(v)}")]
    found = lookup(v)
    if found is None:
        return [Problem(name, f"{where}: asset {v!r} does not exist; upload it first with POST /v1/assets")]
    if found != kind:
        return [Problem(name, f"{where}: asset {v!r} is of kind {found!r}; this input needs kind {kind!r}")]
    return []


def _check_file(name: str, spec: Mapping[str, Any], v: Any, lookup: AssetKindLookup) -> list[Problem]:
    return _check_asset_id(name, str(spec.get("kind", "image")), v, lookup, f"'{name}'")


def _check_file_array(name: str, spec: Mapping[str, Any], v: Any, lookup: AssetKindLookup) -> list[Problem]:
    lo, hi = spec.get("min"), spec.get("max")
    span = f"{_fmt(lo)} to {_fmt(hi)}" if lo is not None and hi is not None else "some"
    if not isinstance(v, list):
        return [Problem(name, f"'{name}' must be a list of {span} asset ids, got {_json_type(v)}")]
    if (lo is not None and len(v) < lo) or (hi is not None and len(v) > hi):
        return [Problem(name, f"'{name}' must hold {span} asset ids; got {len(v)}")]
    kind = str(spec.get("kind", "image"))
    out: list[Problem] = []
    for i, item in enumerate(v):
        out.extend(_check_asset_id(name, kind, item, lookup, f"'{name}[{i}]'"))
    return out


def _check_string_array(name: str, spec: Mapping[str, Any], v: Any) -> list[Problem]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        return [Problem(name, f"'{name}' must be a list of non-empty strings, got {_json_type(v)}")]
    out = []
    if "allowedValues" in spec:
        bad = [x for x in v if x not in spec["allowedValues"]]
        if bad:
            out.append(Problem(name, f"'{name}' items must be among {_allowed(spec)}; got {bad!r}"))
    lo, hi = spec.get("minLength", spec.get("min")), spec.get("maxLength", spec.get("max"))
    if (lo is not None and len(v) < lo) or (hi is not None and len(v) > hi):
        out.append(Problem(name, f"'{name}' must hold {_fmt(lo)} to {_fmt(hi)} items; got {len(v)}"))
    return out


def _check_number_array(name: str, spec: Mapping[str, Any], v: Any) -> list[Problem]:
    if not isinstance(v, list) or not all(_is_number(x) for x in v):
        return [Problem(name, f"'{name}' must be a list of numbers, got {_json_type(v)}")]
    return []


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"number {_fmt(v)}"
    if isinstance(v, str):
        return f"string {v!r}" if len(v) <= 40 else "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _defined(body: Mapping[str, Any], name: str) -> bool:
    v = body.get(name)
    return v is not None and v != "" and v != []


def _required_problems(name: str, spec: Mapping[str, Any], body: Mapping[str, Any]) -> list[Problem]:
    rule = spec.get("required")
    if not rule or _defined(body, name):
        return []
    if rule.get("always"):
        return [Problem(name, f"'{name}' is required")]
    for other, message in (rule.get("ifNotDefined") or {}).items():
        if not _defined(body, other):
            return [Problem(name, f"'{name}' is required when '{other}' is not given: {message}")]
    for other, message in (rule.get("ifDefined") or {}).items():
        if _defined(body, other):
            return [Problem(name, f"'{name}' is required when '{other}' is given: {message}")]
    cond = rule.get("conditional")
    if cond:
        values: Mapping[str, list[Any]] = cond.get("values") or {}
        hits = [body.get(k) in vs for k, vs in values.items()]
        met = any(hits) if cond.get("operator") == "or" else (bool(hits) and all(hits))
        if met:
            when = " and ".join(f"'{k}' is one of {vs}" for k, vs in values.items())
            return [Problem(name, f"'{name}' is required when {when}")]
    return []


def validate_body(body: Any, inputs: list[dict[str, Any]], asset_kind: AssetKindLookup) -> list[Problem]:
    """Every problem with a generate body, in schema order (empty list: valid).

    Parameters
    ----------
    body:
        The decoded JSON body (inputs as top-level fields).
    inputs:
        The model's ``inputs`` list from the schema.
    asset_kind:
        Resolves asset ids for ``file``/``file_array`` inputs.
    """
    if not isinstance(body, dict):
        return [Problem(None, f"The body must be a JSON object of model inputs, got {_json_type(body)}")]
    specs = {s["name"]: s for s in inputs}
    problems: list[Problem] = []
    for name in body:
        if name not in specs:
            known = ", ".join(specs)
            problems.append(Problem(name, f"Unknown input '{name}'; this model accepts: {known}"))
    for name, spec in specs.items():
        if name in body:
            v = body[name]
            if v is None:
                problems.append(Problem(name, f"'{name}' must not be null; omit it to use the default"))
                continue
            kind = spec.get("type")
            if kind == "string":
                problems.extend(_check_string(name, spec, v))
            elif kind == "number":
                problems.extend(_check_number(name, spec, v))
            elif kind == "boolean":
                problems.extend(_check_boolean(name, spec, v))
            elif kind == "file":
                problems.extend(_check_file(name, spec, v, asset_kind))
            elif kind == "file_array":
                problems.extend(_check_file_array(name, spec, v, asset_kind))
            elif kind == "string_array":
                problems.extend(_check_string_array(name, spec, v))
            elif kind == "number_array":
                problems.extend(_check_number_array(name, spec, v))
    # Missing-input problems come last: for {"images": []} the useful first message is about images.
    for name, spec in specs.items():
        problems.extend(_required_problems(name, spec, body))
    return problems
