"""Teachers: a LoRA-fine-tuned SmolLM2 and an OpenAI-compatible endpoint, plus label files."""
