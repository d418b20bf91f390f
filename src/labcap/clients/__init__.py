"""Connections to the engines labcap talks to (Docker, Kubernetes): config discovery and
API error text, in one place."""
