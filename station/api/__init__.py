"""The station service's HTTP API (FastAPI app, token handling, the uvicorn thread) and the thin client the CLI uses.

The package itself imports nothing heavy: the CLI loads only :mod:`station.api.client` (standard library)."""
