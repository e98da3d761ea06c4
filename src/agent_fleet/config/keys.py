"""Which keys a config file may hold: the settings models' own fields, and nothing else.

The allowed set is read from the pydantic models, so a key added to a model is
accepted everywhere at once. Anything else is an error with a "did you mean"
hint, because a misspelt key is usually a setting that silently did not apply
(`http_pul_token` left the server open). The one exception: keys of the
original service that we knowingly ignore are listed here, reported as notes,
and removed before validation.
"""

import difflib
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

#: Keys of the original's config.toml that mean nothing here, with the reason. A dotted
#: key; `[]` stands for any index of an array of tables, `*` for any name of a table.
ORIGINAL_IGNORED: dict[str, str] = {
    "matrix": (
        "the original's Matrix ChatOps section; Agent Fleet reports progress as comments "
        "on the Forgejo issue and on its dashboard instead"
    ),
}


@dataclass(frozen=True, slots=True)
class KeyReport:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The raw config with the knowingly ignored keys taken out.
    cleaned: dict[str, Any] = field(default_factory=dict)


def check_keys(raw: dict[str, Any], model: type[BaseModel]) -> KeyReport:
    """Every key of `raw` that `model` (recursively) does not declare: an error, or a note."""
    report = KeyReport(cleaned=raw)
    _walk(raw, model, "", "", model, report)
    return report


def _walk(
    raw: dict[str, Any],
    model: type[BaseModel],
    shown: str,
    pattern: str,
    root: type[BaseModel],
    report: KeyReport,
) -> None:
    for key in list(raw):
        value = raw[key]
        info = model.model_fields.get(key)
        if info is None:
            _unknown(raw, key, model, shown, pattern, root, report)
            continue
        sub = _section_model(info.annotation)
        if sub is None:
            continue
        if typing.get_origin(info.annotation) is dict and isinstance(value, dict):
            # A table of sections by name ([agent_types.<name>]): check each one.
            for name, item in value.items():
                if isinstance(item, dict):
                    _walk(item, sub, f"{shown}{key}.{name}.", f"{pattern}{key}.*.", root, report)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    _walk(item, sub, f"{shown}{key}[{index}].", f"{pattern}{key}[].", root, report)
        elif isinstance(value, dict):
            _walk(value, sub, f"{shown}{key}.", f"{pattern}{key}.", root, report)


def _unknown(
    raw: dict[str, Any],
    key: str,
    model: type[BaseModel],
    shown: str,
    pattern: str,
    root: type[BaseModel],
    report: KeyReport,
) -> None:
    reason = ORIGINAL_IGNORED.get(f"{pattern}{key}")
    if reason is not None:
        report.notes.append(f"{shown}{key}: a key of the original service, ignored here: {reason}")
        del raw[key]
        return
    report.errors.append(f"{shown}{key}: unknown key{_hint(key, model, root)}")


def _hint(key: str, model: type[BaseModel], root: type[BaseModel]) -> str:
    close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    # A known key in the wrong section: `http_pull_token` under [server].
    for section, info in root.model_fields.items():
        sub = _section_model(info.annotation)
        if sub is not None and sub is not model and key in sub.model_fields:
            return f" (it belongs in [{section}])"
    return ""


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
