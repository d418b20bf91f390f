"""Connections to the engines labcap talks to (Docker, Kubernetes, JupyterHub's API, MLflow):
config discovery, credentials, proxies and CA bundles, and API error text, in one place."""
