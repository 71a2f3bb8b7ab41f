"""Photographed-answer benchmark: verdict accuracy on photographed SAF answers vs the same typed.

Product requirement: "SAF answers rendered as images (printed and handwriting-style fonts, with
photo-like blur, rotation and noise) are graded with verdict accuracy within 5 points of the same
answers typed."

    .venv/bin/python bench/photos.py --model runs/saf_qi --per-language 60 --threads 1 \
        --out runs/bench_photos.json

What it does:

1. Picks ``--per-language`` non-empty SAF ``unseen_answers`` per language (en, de), one per equal
   slice of the (question-ordered) list at a seeded offset, so the sample spreads over questions.
2. Renders each answer as a page: word-wrapped, slight per-line jitter, off-white paper, in a font
   that cycles over the printed fonts (DejaVu Sans / Serif) and the handwriting-style fonts that
   are installed (Debian ``fonts-humor-sans``, ``fonts-comic-neue``, ``fonts-dancingscript``;
   missing ones are skipped and listed; an answer with a character the font in turn lacks goes to
   the next font in the cycle). Then photo-like degradation drawn from a seeded RNG:
   rotation (+-4 deg, white fill), brightness / contrast change, Gaussian blur (radius 0.5-1.5),
   Gaussian noise and JPEG re-compression. The parameters of every image are recorded.
3. Grades the typed requests and the photo requests (the same request with ``answer_text=""`` and
   ``image_paths=(png,)``) with the same loaded model, with the EfficientNet-Lite0 + rapidocr
   media encoder attached.
4. Reports verdict accuracy vs gold for typed and photo (overall, per language, per font style and
   per font), the gap in points (typed - photo; the target is met when it is <= 5), typed/photo
   verdict agreement, the mean absolute score gap (0..100 points), the OCR character error rate
   (Levenshtein distance / reference length, case-folded, whitespace collapsed) of the extracted
   text against the typed answer, and seconds per photo (OCR + image features + model, graded
   one at a time).

Prints the summary JSON and writes it, plus one record per image (``"images"``), to ``--out``.
``--keep-images DIR`` keeps the rendered PNGs for inspection.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_POINTS = 5.0
FONT_ROOT = Path("/usr/share/fonts")


@dataclass(frozen=True)
class FontStyle:
    name: str
    file: str  # file name looked up under /usr/share/fonts
    style: str  # "printed" | "handwriting"
    size: int  # pixel size giving a similar x-height across fonts
    path: str = ""


FONTS: tuple[FontStyle, ...] = (
    FontStyle("DejaVu Sans", "DejaVuSans.ttf", "printed", 30),
    FontStyle("DejaVu Serif", "DejaVuSerif.ttf", "printed", 30),
    FontStyle("Humor Sans", "Humor-Sans.ttf", "handwriting", 32),
    FontStyle("Comic Neue", "ComicNeue-Regular.otf", "handwriting", 34),
    FontStyle("Dancing Script", "DancingScript-Regular.otf", "handwriting", 40),
)


def find_fonts(
    root: Path = FONT_ROOT, fonts: Sequence[FontStyle] = FONTS
) -> tuple[list[FontStyle], list[str]]:
    """(installed fonts with their path, names of the missing ones)."""
    found, missing = [], []
    for f in fonts:
        hits = sorted(root.rglob(f.file)) if root.is_dir() else []
        if hits:
            found.append(replace(f, path=str(hits[0])))
        else:
            missing.append(f.name)
    return found, missing


# ---------------------------------------------------------------------------------- rendering
_NOTDEF: dict[str, bytes] = {}
_GLYPH_OK: dict[tuple[str, str], bool] = {}


def missing_glyphs(font_path: str, text: str) -> set[str]:
    """Characters of ``text`` the font cannot draw (it would draw nothing or its .notdef box)."""
    font = ImageFont.truetype(font_path, 24)
    if font_path not in _NOTDEF:
        _NOTDEF[font_path] = bytes(font.getmask("\ue000"))  # private use: never defined here
    missing = set()
    for ch in set(text):
        if ch.isspace():
            continue
        key = (font_path, ch)
        if key not in _GLYPH_OK:
            mask = font.getmask(ch)
            _GLYPH_OK[key] = mask.getbbox() is not None and bytes(mask) != _NOTDEF[font_path]
        if not _GLYPH_OK[key]:
            missing.add(ch)
    return missing


def wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """Greedy word wrap by rendered width; a word longer than a line gets a line of its own."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return [ln for ln in lines if ln] or [""]


def render_page(
    text: str,
    font_path: str,
    size: int = 30,
    *,
    width: int = 1100,
    margin: int = 50,
    seed: int = 0,
) -> Image.Image:
    """The answer on an off-white page (RGB), word-wrapped, with slight per-line jitter."""
    rng = random.Random(seed)
    font = ImageFont.truetype(font_path, size)
    lines = wrap(text, font, width - 2 * margin - 12)
    line_h = int(size * 1.55)
    height = 2 * margin + line_h * len(lines)
    paper = tuple(rng.randint(a, b) for a, b in ((236, 250), (232, 246), (218, 236)))
    im = Image.new("RGB", (width, height), paper)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(im)
    ink = rng.choice([(20, 20, 25), (25, 30, 70), (35, 35, 40)])
    for i, ln in enumerate(lines):
        x = margin + rng.randint(-4, 8)
        y = margin + i * line_h + rng.randint(-3, 3)
        draw.text((x, y), ln, fill=ink, font=font)
    return im


def degrade(im: Image.Image, seed: int) -> tuple[Image.Image, dict[str, Any]]:
    """Photo-like degradation drawn from ``seed``: (new image, the parameters used)."""
    rng = np.random.default_rng(seed)
    p: dict[str, Any] = {
        "rotation_deg": round(float(rng.uniform(-4.0, 4.0)), 2),
        "brightness": round(float(rng.uniform(0.85, 1.1)), 3),
        "contrast": round(float(rng.uniform(0.7, 1.05)), 3),
        "blur_radius": round(float(rng.uniform(0.5, 1.5)), 2),
        "noise_sigma": round(float(rng.uniform(3.0, 12.0)), 2),
        "jpeg_quality": int(rng.integers(35, 86)),
    }
    out = im.convert("RGB").rotate(
        p["rotation_deg"],
        resample=Image.Resampling.BICUBIC,
        expand=True,
        fillcolor=(255, 255, 255),
    )
    out = ImageEnhance.Brightness(out).enhance(p["brightness"])
    out = ImageEnhance.Contrast(out).enhance(p["contrast"])
    out = out.filter(ImageFilter.GaussianBlur(p["blur_radius"]))
    arr = np.asarray(out, dtype=np.float32)
    arr = arr + rng.normal(0.0, p["noise_sigma"], arr.shape).astype(np.float32)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=p["jpeg_quality"])
    buf.seek(0)
    with Image.open(buf) as jpg:
        out = jpg.convert("RGB")
    return out, p


# ---------------------------------------------------------------------------------- metrics
def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate, case-folded and whitespace-collapsed: edits / reference length.

    Case is ignored because an all-caps handwriting font (Humor Sans) shows no case to read.
    """
    ref = " ".join(reference.casefold().split())
    hyp = " ".join(hypothesis.casefold().split())
    if not ref:
        return 0.0 if not hyp else 1.0
    return levenshtein(ref, hyp) / len(ref)


# ---------------------------------------------------------------------------------- sampling
def pick_answers(examples: Sequence[Any], n: int, seed: int, language: str) -> list[Any]:
    """``n`` non-empty answers: one per equal slice of the list, at a seeded offset per slice."""
    pool = [e for e in examples if e.answer_text.strip()]
    if n >= len(pool):
        return list(pool)
    rng = random.Random(f"{seed}:{language}")
    picked = []
    for k in range(n):
        lo, hi = k * len(pool) // n, (k + 1) * len(pool) // n
        picked.append(pool[rng.randrange(lo, hi)])
    return picked


def plan(
    examples_by_language: dict[str, Sequence[Any]],
    fonts: Sequence[FontStyle],
    n: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Items to render: example, font and an image seed.

    Fonts cycle per language; when the font in turn lacks a glyph of the answer (Humor Sans has
    no umlauts) the next font in the cycle that has them all is used (``font_fallback_from``).
    """
    items = []
    for li, (lang, examples) in enumerate(sorted(examples_by_language.items())):
        for i, ex in enumerate(pick_answers(examples, n, seed, lang)):
            wanted = fonts[i % len(fonts)]
            font = wanted
            for k in range(len(fonts)):
                candidate = fonts[(i + k) % len(fonts)]
                if not missing_glyphs(candidate.path, ex.answer_text):
                    font = candidate
                    break
            items.append(
                {
                    "example": ex,
                    "language": lang,
                    "font": font,
                    "font_fallback_from": wanted.name if font != wanted else None,
                    "seed": seed * 1_000_003 + li * 10_007 + i,
                }
            )
    return items


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    if not n:
        return {"n": 0}
    typed = sum(r["typed_verdict"] == r["gold_verdict"] for r in rows) / n
    photo = sum(r["photo_verdict"] == r["gold_verdict"] for r in rows) / n
    return {
        "n": n,
        "typed_accuracy": round(100 * typed, 2),
        "photo_accuracy": round(100 * photo, 2),
        "accuracy_gap_points": round(100 * (typed - photo), 2),
        "verdict_agreement": round(
            100 * sum(r["typed_verdict"] == r["photo_verdict"] for r in rows) / n, 2
        ),
        "score_gap_points_mean": round(statistics.mean(r["score_gap_points"] for r in rows), 2),
        "ocr_cer_mean": round(statistics.mean(r["cer"] for r in rows), 4),
        "ocr_cer_median": round(statistics.median(r["cer"] for r in rows), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--per-language", type=int, default=60)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch/onnxruntime threads (0 = default)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench_photos.json"))
    ap.add_argument("--keep-images", type=Path, default=None, help="save the PNGs here")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ml.data.saf import load_saf
    from ml.inference import FeedbackModel
    from ml.models.vision import VisionMediaEncoder

    if args.threads:
        torch.set_num_threads(args.threads)
        import cv2

        cv2.setNumThreads(args.threads)

    fonts, missing = find_fonts()
    if not fonts:
        raise SystemExit("no fonts found under /usr/share/fonts")
    examples = {lang: load_saf("unseen_answers", lang) for lang in ("en", "de")}
    items = plan(examples, fonts, args.per_language, args.seed)

    t0 = time.perf_counter()
    media = VisionMediaEncoder("efficientnet-lite0", args.device, ocr_threads=args.threads or None)
    model = FeedbackModel.load(args.model, args.device, media=media)
    model.featurizer.media = media
    model.featurizer.image_dim = media.dim
    load_s = time.perf_counter() - t0

    typed_reqs = [it["example"].to_request(with_learner=False) for it in items]
    typed_res = []
    for i in range(0, len(typed_reqs), 32):
        typed_res.extend(model.predict_batch(typed_reqs[i : i + 32]))

    rows: list[dict[str, Any]] = []
    photo_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep_images or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        photo_reqs = []
        for i, (it, req) in enumerate(zip(items, typed_reqs, strict=True)):
            font: FontStyle = it["font"]
            page = render_page(req.answer_text, font.path, font.size, seed=it["seed"])
            photo, params = degrade(page, it["seed"])
            path = folder / f"{i:03d}_{it['language']}_{font.file.split('.')[0]}.png"
            photo.save(path)
            it["params"] = params | {"width": photo.width, "height": photo.height}
            photo_reqs.append(replace(req, answer_text="", image_paths=(str(path),)))
        if photo_reqs:
            model.predict(photo_reqs[0])  # warm-up: OCR engine and image backbone
        for it, req, typed, preq in zip(items, typed_reqs, typed_res, photo_reqs, strict=True):
            t = time.perf_counter()
            photo = model.predict(preq)
            photo_s.append(time.perf_counter() - t)
            ex = it["example"]
            rows.append(
                {
                    "id": ex.id,
                    "question_id": ex.question_id,
                    "language": it["language"],
                    "font": it["font"].name,
                    "style": it["font"].style,
                    "font_fallback_from": it["font_fallback_from"],
                    "params": it["params"],
                    "gold_verdict": ex.verdict.value,
                    "typed_verdict": typed.verdict.value,
                    "photo_verdict": photo.verdict.value,
                    "typed_score": typed.score,
                    "photo_score": photo.score,
                    "score_gap_points": round(
                        100 * abs(typed.score - photo.score) / req.max_score, 3
                    ),
                    "cer": round(cer(req.answer_text, photo.extracted_text), 4),
                    "answer_chars": len(req.answer_text),
                    "ocr_text": photo.extracted_text,
                }
            )

    overall = _summary(rows)
    used = [f for f in fonts if any(r["font"] == f.name for r in rows)]
    report: dict[str, Any] = {
        "model": args.model,
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "seed": args.seed,
        "per_language": args.per_language,
        "n_photos": len(rows),
        "target": "photo verdict accuracy within 5 points of typed",
        "met": bool(rows) and overall["accuracy_gap_points"] <= TARGET_POINTS,
        **{k: v for k, v in overall.items() if k != "n"},
        "seconds_per_photo": round(statistics.mean(photo_s), 2) if photo_s else None,
        "load_s": round(load_s, 2),
        "by_language": {
            lang: _summary([r for r in rows if r["language"] == lang]) for lang in examples
        },
        "by_style": {
            s: _summary([r for r in rows if r["style"] == s])
            for s in ("printed", "handwriting")
            if any(r["style"] == s for r in rows)
        },
        "by_font": {f.name: _summary([r for r in rows if r["font"] == f.name]) for f in used},
        "fonts_used": {
            f.name: {"style": f.style, "path": f.path, "n": sum(r["font"] == f.name for r in rows)}
            for f in used
        },
        "fonts_missing": missing,
        "font_fallbacks": sum(r["font_fallback_from"] is not None for r in rows),
        "accuracy_unit": "percent; gap = typed - photo in percentage points",
    }
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report | {"images": rows}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
