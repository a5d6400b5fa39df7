# syntax=docker/dockerfile:1
# One image for `runbook worker`, `runbook webhook` and the CLI (runbook start/status/approve).
#   docker build -t redis-runbook:0.1.0 .
#   docker run redis-runbook:0.1.0 worker          # the default command
#   docker run -p 8080:8080 redis-runbook:0.1.0 webhook --host 0.0.0.0 --port 8080
# Dependencies come from deploy/requirements.lock (the versions the test suite ran).
# tests/deploy/test_deploy_image.py checks this file's structure (no Docker engine is needed there).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# Compilers only here, for any dependency without a wheel; none of it reaches the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/runbook
ENV PATH=/opt/runbook/bin:$PATH
WORKDIR /src
COPY deploy/requirements.lock ./deploy/requirements.lock
RUN pip install --no-deps -r deploy/requirements.lock
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY activities ./activities
COPY workflows ./workflows
COPY worker ./worker
RUN pip install --no-deps .
# Byte-compile now: the root filesystem is read-only at run time.
RUN python -m compileall -q /opt/runbook

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="redis-runbook" \
      org.opencontainers.image.description="Runbook automation for Redis cache failures on Temporal" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/runbook/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RUNBOOK_CONFIG=/etc/redis-runbook/runbook.yaml
RUN groupadd --system --gid 10001 runbook \
 && useradd --system --uid 10001 --gid runbook --no-create-home --shell /usr/sbin/nologin runbook
COPY --from=build /opt/runbook /opt/runbook
COPY deploy/docker/healthcheck.py /usr/local/bin/runbook-healthcheck
COPY deploy/runbook.yaml /etc/redis-runbook/runbook.yaml
RUN chmod 0755 /usr/local/bin/runbook-healthcheck
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "/usr/local/bin/runbook-healthcheck"]
ENTRYPOINT ["runbook"]
CMD ["worker"]
