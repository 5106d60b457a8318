"""The officers' status page and the Prometheus metrics (`revoca serve status`).

queries (what the page reads), chart (the revocations chart), auth (who may look), views
(the page), tallies and metrics (/metrics), app (the factory), server (gunicorn).
"""

from ca.status_page.app import create_app

__all__ = ["create_app"]
