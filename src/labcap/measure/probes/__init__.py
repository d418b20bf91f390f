"""Startup probes: one core, a Docker and a Kubernetes back-end."""
