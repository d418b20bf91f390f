# labcap's own image (`labcap worker` Pods of `labcap profile --loadgen k8s`): labcap from a
# wheel of this checkout (never from a package registry) and its dependencies, Locust pinned
# to the version the master runs (the handshake refuses another), in /opt/venv, built with
# the machine's CA bundle in a throwaway stage.
ARG BASE
FROM ${BASE} AS build
ARG WHEEL
ARG LOCUST
COPY ca.crt /tmp/ca.crt
COPY wheel/ /tmp/wheel/
RUN python3 -m venv /opt/venv \
 && PIP_CERT=/tmp/ca.crt /opt/venv/bin/pip install --no-cache-dir --no-compile \
      "/tmp/wheel/${WHEEL}" "locust==${LOCUST}" \
 && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
USER 1000
ENTRYPOINT ["labcap"]
