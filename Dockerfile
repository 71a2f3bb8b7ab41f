# One image for every Marginalia process: web (gunicorn), GPU and I/O workers, beat, migrate.
#   docker build -t marginalia .
# torch comes from PyPI with its CUDA runtime wheels; the host needs only the NVIDIA driver
# and the NVIDIA container toolkit (GPU workers only).
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MARGINALIA_MODE=production \
    MARGINALIA_STORAGE_DIR=/data/uploads \
    MARGINALIA_MODEL_REGISTRY=/models

# curl for the healthchecks; libgomp for torch on CPU; nothing else at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl libgomp1 \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 marginalia
WORKDIR /app

# Dependencies first (cached while only the code changes).
COPY pyproject.toml README.md ./
RUN mkdir -p lti_tool worker ml \
 && touch lti_tool/__init__.py worker/__init__.py ml/__init__.py \
 && pip install ".[ml]" \
 && pip uninstall -y marginalia

COPY lti_tool ./lti_tool
COPY worker ./worker
COPY ml ./ml
COPY migrations ./migrations
# Editable, so that `marginalia db upgrade` finds /app/migrations beside the package.
RUN pip install --no-deps -e . \
 && mkdir -p /data/uploads /models /app/var \
 && chown -R marginalia:marginalia /data /models /app/var

USER marginalia
EXPOSE 8000
CMD ["marginalia", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
