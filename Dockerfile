# The hub's processes (API, relay, workers) for docker-compose.yml's `cluster` profile.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY alembic alembic
COPY hub hub
COPY tasks tasks
COPY adapters adapters
# Editable, so `hub migrate` finds alembic/ beside the package as it does in a checkout.
RUN pip install --no-cache-dir -e . && useradd --system hub
USER hub
ENV HUB_LOG_FORMAT=json
