# Multi-stage image of the assistant and its monitor (`assistant monitor serve`).
#   docker build -t assistant .
#   docker run -p 9464:9464 -e LLM_API_KEY=... assistant
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY assistant ./assistant
COPY assistant_monitoring ./assistant_monitoring
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /dist .

FROM python:3.12-slim AS runtime
ENV PYTHONUNBUFFERED=1 \
    ASSISTANT_ENV=production \
    ASSISTANT_ENV_FILE=none \
    ASSISTANT_DATA_DIR=/var/lib/assistant \
    MONITOR_PORT=9464 \
    MONITOR_MAX_CONNECTIONS=512
RUN useradd --system --uid 10001 --home-dir /var/lib/assistant --create-home assistant
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl
USER assistant
WORKDIR /var/lib/assistant
VOLUME ["/var/lib/assistant"]
EXPOSE 9464
# Degraded still counts as up for the orchestrator; unhealthy does not.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["assistant", "monitor", "health", "--fail-on", "unhealthy", "--check", "database", "--check", "memory", "--check", "disk"]
# Open files: MONITOR_MAX_CONNECTIONS + 320 (832 for 512). Docker's default limit is
# far above it; `docker run --ulimit nofile=8192` (compose.yaml sets it) makes it sure.
# 0.0.0.0 inside the container: set MONITOR_TOKEN, which `monitor serve` then requires.
CMD ["sh", "-c", "assistant db migrate && exec assistant monitor serve --host 0.0.0.0"]
