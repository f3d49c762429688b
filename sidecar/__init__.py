"""llm-sidecar: a local OpenAI-compatible reverse proxy for LLM traffic.

Importing this package configures nothing and starts nothing; see `sidecar.app.create_app`.
"""

__version__ = "0.1.0"
USER_AGENT = f"llm-sidecar/{__version__}"  # on the requests the sidecar makes itself
