# alertbridge: a small, non-root image. Build: docker build -t alertbridge .
# Stage 1 builds a wheel and its dependencies into a venv; stage 2 copies only the venv.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/alertbridge \
 && /opt/alertbridge/bin/pip install --upgrade pip \
 && /opt/alertbridge/bin/pip install '.[aws]'

FROM ${PYTHON_IMAGE}
# One unprivileged user; the SQLite file (if used) and backups live in /var/lib/alertbridge.
RUN groupadd --system --gid 10001 alertbridge \
 && useradd --system --uid 10001 --gid alertbridge --home-dir /var/lib/alertbridge --create-home alertbridge
COPY --from=build /opt/alertbridge /opt/alertbridge
ENV PATH=/opt/alertbridge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ALERTBRIDGE_CONFIG=/etc/alertbridge/alertbridge.yaml \
    ALERTBRIDGE_LISTEN=0.0.0.0:8080
USER alertbridge
WORKDIR /var/lib/alertbridge
EXPOSE 8080
# Liveness only: /healthz answers while the process serves; readiness (database, migrations) is /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; port=os.environ.get('ALERTBRIDGE_LISTEN','0.0.0.0:8080').rsplit(':',1)[1]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["alertbridge"]
CMD ["serve"]
