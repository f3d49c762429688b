# llm-sidecar container image.
#
#   docker build -t llm-sidecar:0.1.0 .
#
# As a sidecar it shares its application's network namespace (same pod, or
# `docker run --network container:APP`), so the proxy listens on loopback only. Standalone
# with a published port, bind it to all interfaces and keep the root filesystem read-only:
#
#   docker run --read-only --tmpfs /tmp -v llm-sidecar-state:/var/lib/llm-sidecar \
#     -e SIDECAR_HOST=0.0.0.0 -e SIDECAR_UPSTREAM_API_KEY -p 4141:4141 llm-sidecar:0.1.0
#
# The admin port (4142) serves probes and /metrics to anyone; its other routes (usage, the
# inspector, config, cache purge) need -e SIDECAR_ADMIN_TOKEN=<token> (then send
# "Authorization: Bearer <token>", or open /sidecar/ui?token=<token> once).
#
# The Helm chart in deploy/helm/llm-sidecar mounts its own config over /etc/llm-sidecar.

# The base image. scripts/image-check builds on a stand-in made from Debian's own packages
# (Debian's python3 at the same paths in both stages) where the real one cannot be pulled:
#   --build-arg PYTHON_IMAGE=localhost/...-python --build-arg BUILD_IMAGE=localhost/...-build
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
# The build stage's base: the same image, unless the final one comes without pip (a stand-in).
ARG BUILD_IMAGE=${PYTHON_IMAGE}

# ---- build: a virtualenv holding the project and its dependencies, without pip itself ----
FROM ${BUILD_IMAGE} AS build

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
# pip runs from the base image against a venv created without pip/setuptools, so the venv
# copied into the final stage holds only what the sidecar imports (bytecode precompiled).
# A builder whose pip needs its own index or CA passes them as build secrets (pip.conf,
# pip-ca): mounted for this RUN only, never written to a layer.
RUN --mount=type=secret,id=pip.conf --mount=type=secret,id=pip-ca \
    if [ -f /run/secrets/pip.conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip.conf; fi \
 && if [ -f /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
 && python -m venv --without-pip /opt/llm-sidecar \
 && python -m pip --python /opt/llm-sidecar/bin/python install \
      --no-cache-dir --disable-pip-version-check . \
 && /opt/llm-sidecar/bin/llm-sidecar version

# ---- final: the same base (the venv links to its interpreter), no compilers, no pip ----
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="llm-sidecar" \
      org.opencontainers.image.description="A local OpenAI-compatible reverse proxy for LLM traffic, run next to the application." \
      org.opencontainers.image.licenses="Apache-2.0"

# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only; the venv is precompiled.
# Only SIDECAR_CONFIG is set here: SIDECAR_* variables override the config file, so setting
# others in the image would silently defeat a mounted config.
ENV PATH=/opt/llm-sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIDECAR_CONFIG=/etc/llm-sidecar/config.yaml

# A fixed numeric user so `runAsNonRoot` can verify it; the state directory is its home.
# (A base without pip, such as the stand-in, has nothing to uninstall.)
RUN if python -m pip --version >/dev/null 2>&1; then \
      python -m pip uninstall --yes --disable-pip-version-check pip setuptools wheel; fi \
 && groupadd --system --gid 10001 llm-sidecar \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/llm-sidecar \
      --no-create-home --shell /usr/sbin/nologin llm-sidecar \
 && mkdir -p /etc/llm-sidecar /var/lib/llm-sidecar \
 && chown 10001:10001 /var/lib/llm-sidecar

COPY --from=build /opt/llm-sidecar /opt/llm-sidecar

# The image's default config: the proxy on loopback (reachable from the same pod or network
# namespace only), the admin listener on every interface for probes and scraping, state (the
# SQLite ledger) on the volume. SIDECAR_* env vars override it. On that listener /healthz,
# /readyz and /metrics need no token; the other admin routes (spend, the request inspector and
# its stream, the config, cache purge) are refused (403) unless SIDECAR_ADMIN_TOKEN gives them
# a token, which the sidecar expands at start (hence the single quotes).
# hadolint ignore=SC2016
RUN printf '%s\n' \
      'listen: {host: 127.0.0.1, port: 4141}' \
      'admin: {host: 0.0.0.0, port: 4142, token: "${SIDECAR_ADMIN_TOKEN:-}"}' \
      'state_dir: /var/lib/llm-sidecar' \
      > /etc/llm-sidecar/config.yaml \
 && llm-sidecar check-config /etc/llm-sidecar/config.yaml

USER 10001:10001
WORKDIR /var/lib/llm-sidecar
VOLUME ["/var/lib/llm-sidecar"]
# 4141: the OpenAI-compatible proxy (loopback by default); 4142: probes, metrics, and the
# admin routes behind SIDECAR_ADMIN_TOKEN.
EXPOSE 4141 4142
STOPSIGNAL SIGTERM
# `llm-sidecar health` reads SIDECAR_CONFIG and probes the admin listener's /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["llm-sidecar", "health"]

ENTRYPOINT ["llm-sidecar"]
CMD ["serve"]
