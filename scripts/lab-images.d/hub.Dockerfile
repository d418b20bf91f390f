# Stand-in for quay.io/jupyterhub/jupyterhub: JupyterHub in /opt/venv, /srv/jupyterhub.
ARG PYIMAGE
FROM ${PYIMAGE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
WORKDIR /srv/jupyterhub
EXPOSE 8000
CMD ["jupyterhub"]
