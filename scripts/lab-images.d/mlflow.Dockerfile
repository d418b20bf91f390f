# Stand-in for ghcr.io/mlflow/mlflow: MLflow in /opt/venv.
ARG PYIMAGE
FROM ${PYIMAGE}
ARG RECIPE
LABEL org.labcap.recipe=${RECIPE}
EXPOSE 5000
CMD ["mlflow", "server"]
