# Marginalia — developer entry points. See README.md.
VENV      ?= .venv
PYTHON    ?= python3
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
HOST      ?= 127.0.0.1
PORT      ?= 5000
DEMO_ENV  := MARGINALIA_MODE=demo MARGINALIA_SANDBOX_ENABLED=true \
             MARGINALIA_DATABASE_URL=sqlite:///var/demo.db

.PHONY: install demo test lint format services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[sandbox,ml,test]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/ensure-services.sh

test: install services
	$(BIN)/ruff check .
	$(BIN)/pytest

# The demo needs no Redis or PostgreSQL: SQLite for the data, a real Celery worker on kombu's
# SQLAlchemy transport (var/broker.sqlite) in the background, stopped when serve exits.
demo: install
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
