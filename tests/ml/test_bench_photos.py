"""bench/photos.py helpers: renderer, degradation, CER, answer picker (no model, no OCR)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "photos.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_photos", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


photos = _load()


@pytest.fixture(scope="module")
def printed():
    fonts, _ = photos.find_fonts()
    font = next((f for f in fonts if f.style == "printed"), None)
    if font is None:
        pytest.skip("DejaVu fonts are not installed")
    return font


def test_render_page_size_and_mode(printed) -> None:
    im = photos.render_page("Light, water and CO2.", printed.path, printed.size, width=600)
    assert im.mode == "RGB"
    assert im.width == 600
    assert 2 * 50 + printed.size <= im.height <= 2 * 50 + 2 * printed.size  # one line + margins
    arr = np.asarray(im)
    assert arr.min() < 100  # ink
    assert arr[0, 0].min() > 200  # off-white paper


def test_render_page_wraps_long_text(printed) -> None:
    short = photos.render_page("word", printed.path, printed.size, width=600)
    long = photos.render_page("word " * 80, printed.path, printed.size, width=600)
    assert long.width == short.width
    assert long.height > 3 * short.height - 4 * 50


def test_degrade_is_seeded_and_changes_pixels(printed) -> None:
    page = photos.render_page("Sunlight and water.", printed.path, printed.size, width=500)
    a, pa = photos.degrade(page, seed=7)
    b, pb = photos.degrade(page, seed=7)
    c, pc = photos.degrade(page, seed=8)
    assert pa == pb and pa != pc
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.mode == "RGB"
    assert -4 <= pa["rotation_deg"] <= 4 and 0.5 <= pa["blur_radius"] <= 1.5
    if a.size == page.size:
        assert not np.array_equal(np.asarray(a), np.asarray(page))
    else:  # rotation with expand grew the canvas
        assert a.width >= page.width and a.height >= page.height


def test_cer_on_hand_examples() -> None:
    assert photos.levenshtein("kitten", "sitting") == 3
    assert photos.levenshtein("", "abc") == 3
    assert photos.cer("abc", "abc") == 0.0
    assert photos.cer("abcd", "abed") == pytest.approx(0.25)
    assert photos.cer("ab", "") == 1.0
    assert photos.cer("", "") == 0.0
    assert photos.cer("Light  and\nwater", "LIGHT AND WATER") == 0.0  # case, whitespace ignored
    assert photos.cer("abc", "abcxyz") == pytest.approx(1.0)


@dataclass(frozen=True)
class _Ex:
    id: str
    answer_text: str


def test_pick_answers_deterministic_per_language() -> None:
    pool = [_Ex(str(i), "" if i % 7 == 0 else f"answer {i}") for i in range(100)]
    en1 = photos.pick_answers(pool, 10, seed=0, language="en")
    en2 = photos.pick_answers(pool, 10, seed=0, language="en")
    de = photos.pick_answers(pool, 10, seed=0, language="de")
    other = photos.pick_answers(pool, 10, seed=1, language="en")
    assert [e.id for e in en1] == [e.id for e in en2]
    assert [e.id for e in en1] != [e.id for e in de]
    assert [e.id for e in en1] != [e.id for e in other]
    assert len(en1) == 10 and len({e.id for e in en1}) == 10
    assert all(e.answer_text for e in en1)
    ids = [int(e.id) for e in en1]
    assert ids == sorted(ids) and ids[0] < 15 and ids[-1] > 85  # spread over the list
    assert len(photos.pick_answers(pool[:5], 10, seed=0, language="en")) == 4  # all non-empty


def test_plan_cycles_fonts_and_falls_back_on_missing_glyphs(printed) -> None:
    fonts, _ = photos.find_fonts()
    pool = {"en": [_Ex(f"e{i}", f"answer {i}") for i in range(20)]}
    items = photos.plan(pool, fonts, 2 * len(fonts), seed=0)
    assert [it["font"].name for it in items] == [f.name for f in fonts] * 2
    assert all(it["font_fallback_from"] is None for it in items)
    assert photos.missing_glyphs(printed.path, "Grüße, € 5") == set()
