"""Throughput, latency and memory of a feedback model on typed answers.

    python bench/model.py --model runs/saf_v4 --threads 2 --out runs/bench.json [--device cpu]
        [--graded 50] [--peers 64]

Prints a JSON report and writes it to --out. Text-only throughput is measured at batch 32 on SAF
unseen answers (English + German); single-request latency over --single requests. ``--graded N``
sends N instructor-graded answers to the same question with every request (as the worker does
with an activity's reviews; SAF training answers play them). ``--peers N`` sends up to N other
learners' answers to the same question (SAF training answers again) as classmates' answers.
Reviews and classmates' answers are encoded once, as a worker keeps them in its text cache; that
one-time cost is reported apart. Photographed answers are measured by ``bench/photos.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--single", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--graded", type=int, default=0, help="graded answers sent per request")
    ap.add_argument("--peers", type=int, default=0, help="classmates' answers sent per request")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_model.json"))
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
    training = load_saf("training", "en") + load_saf("training", "de")
    if args.graded:
        from ml.types import GradedAnswer

        reviews: dict[str, list[GradedAnswer]] = {}
        for e in training:
            reviews.setdefault(e.question_id, []).append(
                GradedAnswer(e.answer_text, e.score_fraction, e.verdict)
            )
        reqs = [
            replace(r, graded=tuple(reviews.get(r.question_id or "", [])[: args.graded]))
            for r in reqs
        ]
    if args.peers:
        # Other learners' answers to the same question (SAF training answers play them, so
        # none is an answer being graded), as the worker sends an activity's latest answers.
        others: dict[str, list[str]] = {}
        for e in training:
            others.setdefault(e.question_id, []).append(e.answer_text)
        reqs = [
            replace(r, peer_answers=tuple(others.get(r.question_id or "", [])[: args.peers]))
            for r in reqs
        ]
    model.predict_batch(reqs[: args.batch])  # warm-up
    encoder = model.featurizer.encoder
    encoder._cache.clear()  # measure real encoding, not the cache
    evidence_texts = sorted(
        {g.answer_text for r in reqs for g in r.graded} | {t for r in reqs for t in r.peer_answers}
    )
    # A worker encodes an activity's reviews and classmates' answers once and keeps them (the
    # encoder's text cache; it graded most of those answers itself): that one-time cost is
    # reported apart from the steady-state throughput.
    t0 = time.perf_counter()
    encoder.encode(evidence_texts)
    evidence_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(reqs), args.batch):
        model.predict_batch(reqs[i : i + args.batch])
    batch_s = time.perf_counter() - t0
    encoder._cache.clear()
    encoder.encode(evidence_texts)
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
        "graded_per_request": args.graded,
        "peers_per_request": args.peers,
        "evidence_texts_encoded": len(evidence_texts),
        "evidence_encode_s": round(evidence_s, 2),
        "text_answers_per_s": round(len(reqs) / batch_s, 1),
        "single_latency_ms_p50": round(statistics.median(lat), 1),
        "single_latency_ms_p95": round(sorted(lat)[int(0.95 * (len(lat) - 1))], 1),
        "params": sum(p.numel() for p in model.model.parameters()),
    }
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
