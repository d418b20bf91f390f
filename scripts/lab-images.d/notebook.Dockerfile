# Stand-in for a jupyter/docker-stacks notebook image: user jovyan (uid 1000), home
# /home/jovyan with work/, jupyterhub-singleuser as the command.
ARG PYIMAGE
FROM ${PYIMAGE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
RUN useradd --create-home --uid 1000 --gid 100 --shell /bin/bash jovyan \
 && mkdir -p /home/jovyan/work && chown -R 1000:100 /home/jovyan
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyterhub-singleuser"]
