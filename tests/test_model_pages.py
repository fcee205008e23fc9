"""The model pages (docs/models/*.md): their parameter tables are the ones that
``docs/make_model_pages.py`` generates from the built models now, and every page is in the
site's navigation."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def generator():
    spec = importlib.util.spec_from_file_location("make_model_pages",
                                                  REPO / "docs" / "make_model_pages.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_model_page_parameter_tables_are_current():
    """Regenerates every table in memory (about 15 s: each experiment is built once) and
    compares it with the committed page."""
    pages = generator().pages()
    assert {p.name for p in pages} == {p.name for p in (REPO / "docs" / "models").glob("*.md")}
    stale = [str(path.relative_to(REPO)) for path, (old, new) in pages.items() if old != new]
    assert not stale, (f"parameter tables out of date in {', '.join(stale)}: "
                       "run python docs/make_model_pages.py")
    for path, (old, _) in pages.items():
        assert "<!-- parameters:begin" in old and "| --- |" in old, path


def test_model_pages_are_in_the_navigation():
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    models = next(entry["Models"] for entry in nav if "Models" in entry)
    listed = {next(iter(entry.values())) for entry in models}
    pages = {f"models/{p.name}" for p in (REPO / "docs" / "models").glob("*.md")}
    assert pages <= listed, sorted(pages - listed)
