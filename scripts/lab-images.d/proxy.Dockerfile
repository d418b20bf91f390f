# Stand-in for quay.io/jupyterhub/configurable-http-proxy: Debian's nodejs and the proxy
# (npm-installed by lab-images into chp/ of the build context), run as nobody.
ARG BASE
FROM ${BASE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*
COPY chp /opt/chp
ENV PATH=/opt/chp/node_modules/.bin:/usr/local/bin:/usr/bin:/bin
USER 65534
EXPOSE 8000 8001
ENTRYPOINT []
CMD ["configurable-http-proxy"]
