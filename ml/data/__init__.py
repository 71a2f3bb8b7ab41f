"""Datasets: SAF XML, our JSONL training format and the bundled corpus."""

from ml.data.examples import Example, load_corpus, load_jsonl, write_jsonl
from ml.data.saf import load_saf, saf_dir

__all__ = ["Example", "load_corpus", "load_jsonl", "load_saf", "saf_dir", "write_jsonl"]
