"""Throughput, latency and memory of a feedback model; photo-vs-typed grading gap.

    python bench/model.py --model runs/saf --out runs/bench.json [--images 20] [--device cpu]

Prints a JSON report and writes it to --out. Text-only throughput is measured at batch 32 on SAF
unseen answers (English + German); single-request latency over --single requests; the image check
renders --images SAF answers as PNGs, grades them through OCR + the image encoder and compares the
score with the typed answer (normalised to 0..100 points).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def render(text: str, path: Path) -> str:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=28)
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) > 60:
            lines.append(line)
            line = ""
        line = f"{line} {w}".strip()
    lines.append(line)
    im = Image.new("RGB", (1100, 40 + 40 * len(lines)), "white")
    draw = ImageDraw.Draw(im)
    for i, ln in enumerate(lines):
        draw.text((20, 20 + 40 * i), ln, fill="black", font=font)
    im.save(path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--single", type=int, default=50)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ml.data.saf import load_saf
    from ml.inference import FeedbackModel

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = FeedbackModel.load(args.model, args.device)
    load_s = time.perf_counter() - t0
    examples = load_saf("unseen_answers", "en") + load_saf("unseen_answers", "de")
    reqs = [e.to_request(with_learner=False) for e in examples]
    model.predict_batch(reqs[: args.batch])  # warm-up
    model.featurizer.encoder._cache.clear()  # measure real encoding, not the cache
    t0 = time.perf_counter()
    for i in range(0, len(reqs), args.batch):
        model.predict_batch(reqs[i : i + args.batch])
    batch_s = time.perf_counter() - t0
    model.featurizer.encoder._cache.clear()
    lat = []
    for r in reqs[: args.single]:
        t = time.perf_counter()
        model.predict(r)
        lat.append(1000 * (time.perf_counter() - t))
    report = {
        "model": args.model,
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 2),
        "text_batch": args.batch,
        "text_answers_per_s": round(len(reqs) / batch_s, 1),
        "single_latency_ms_p50": round(statistics.median(lat), 1),
        "single_latency_ms_p95": round(sorted(lat)[int(0.95 * (len(lat) - 1))], 1),
        "params": sum(p.numel() for p in model.model.parameters()),
    }
    if args.images:
        from ml.models.vision import VisionMediaEncoder

        media = VisionMediaEncoder("efficientnet-lite0", args.device)
        model.featurizer.media = media
        model.featurizer.image_dim = media.dim
        gaps, ocr_s = [], []
        with tempfile.TemporaryDirectory() as tmp:
            picked = [r for r in reqs if r.answer_text][:: max(1, len(reqs) // args.images)]
            for i, r in enumerate(picked[: args.images]):
                photo = replace(
                    r, answer_text="", image_paths=(render(r.answer_text, Path(tmp) / f"{i}.png"),)
                )
                t = time.perf_counter()
                typed_res, photo_res = model.predict_batch([r, photo])
                ocr_s.append(time.perf_counter() - t)
                gaps.append(100 * abs(typed_res.score - photo_res.score) / r.max_score)
        report |= {
            "image_answers": len(gaps),
            "image_score_gap_points_mean": round(statistics.mean(gaps), 2),
            "image_within_5_points_share": round(sum(g <= 5 for g in gaps) / len(gaps), 3),
            "image_seconds_per_answer": round(statistics.mean(ocr_s), 2),
        }
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
