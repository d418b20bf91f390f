"""labcap: measure a self-hosted AI lab's capacity and decide Compose vs K3s."""

__version__ = "0.1.0"
