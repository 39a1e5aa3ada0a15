"""Building Settings in tests: the shipped configuration (or the code's defaults)
with a test's changes per section, validated as the real loader validates them;
and configuration files written as TOML for tests that start a process."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config" / "execution.toml"
UNIVERSE = ROOT / "config" / "universe.toml"

Sections = Mapping[str, Mapping[str, Any]]


def with_sections(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy of settings with fields of some sections replaced, validated (so that
    "auto" becomes RolloutMode.AUTO and overrides become SymbolOverride)."""
    updates = {}
    for name, fields in sections.items():
        section = getattr(settings, name)
        updates[name] = type(section).model_validate({**section.model_dump(), **fields})
    return settings.model_copy(update=updates)


def shipped_settings(**sections: Mapping[str, Any]) -> Settings:
    """config/execution.toml (no environment overrides), the repository's universe
    by absolute path (tests run from anywhere), then the test's own changes."""
    settings = load_settings(SHIPPED_CONFIG, env={})
    base: dict[str, dict[str, Any]] = {"session": {"universe_path": str(UNIVERSE)}}
    for name, fields in sections.items():
        base[name] = {**base.get(name, {}), **fields}
    return with_sections(settings, **base)


def merged(base: Sections, changes: Sections | None) -> dict[str, dict[str, Any]]:
    """base with changes laid over it, section by section (neither is modified)."""
    out = {k: dict(v) for k, v in base.items()}
    for section, values in (changes or {}).items():
        out.setdefault(section, {}).update(values)
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def write_config(path: Path, config: Sections) -> Path:
    """config ({section: {key: value}}) as a TOML file at path."""
    lines: list[str] = []
    for section, values in config.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def settings_from(path: Path, config: Sections) -> Settings:
    """config written to path and loaded by the real loader (no environment)."""
    return load_settings(write_config(path, config), env={})
