# Stand-in for a jupyter/docker-stacks notebook image: user jovyan (uid 1000), home
# /home/jovyan with work/, jupyterhub-singleuser as the command.
ARG PYIMAGE
FROM ${PYIMAGE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
# bytecode, as pip leaves it in the upstream images: run as a user (K3s: uid 1000) Python
# cannot write __pycache__, and compiling every module at each start (kubernetes_asyncio's
# ~1000) outlasted the liveness probe. A few files of test suites do not compile: ignored.
RUN python3 -m compileall -q -j 0 /opt/venv/lib >/dev/null 2>&1 || true
RUN useradd --create-home --uid 1000 --gid 100 --shell /bin/bash jovyan \
 && mkdir -p /home/jovyan/work && chown -R 1000:100 /home/jovyan
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyterhub-singleuser"]
