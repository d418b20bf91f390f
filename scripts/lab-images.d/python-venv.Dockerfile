# A Python image: one venv at /opt/venv with PIP_PACKAGES, built with the machine's CA
# bundle (ca.crt in the build context) in a throwaway stage, so the bundle never reaches the
# final image. Used for the hub base, MLflow and the notebook stand-ins.
ARG BASE
FROM ${BASE} AS build
ARG PIP_PACKAGES
COPY ca.crt /tmp/ca.crt
RUN python3 -m venv /opt/venv \
 && PIP_CERT=/tmp/ca.crt /opt/venv/bin/pip install --no-cache-dir --no-compile $PIP_PACKAGES \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
