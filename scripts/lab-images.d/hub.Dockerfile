# Stand-in for quay.io/jupyterhub/jupyterhub: JupyterHub in /opt/venv, /srv/jupyterhub.
ARG PYIMAGE
FROM ${PYIMAGE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
# bytecode, as pip leaves it in the upstream images: run as a user (K3s: uid 1000) Python
# cannot write __pycache__, and compiling every module at each start (kubernetes_asyncio's
# ~1000) outlasted the liveness probe. A few files of test suites do not compile: ignored.
RUN python3 -m compileall -q -j 0 /opt/venv/lib >/dev/null 2>&1 || true
WORKDIR /srv/jupyterhub
EXPOSE 8000
CMD ["jupyterhub"]
