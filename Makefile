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

demo: install
	$(DEMO_ENV) $(BIN)/marginalia db upgrade
	$(DEMO_ENV) $(BIN)/marginalia serve --host $(HOST) --port $(PORT)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
