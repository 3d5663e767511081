"""The OpenAI-compatible HTTP gateway."""

from pinfactory.gateway.app import create_app

__all__ = ["create_app"]
