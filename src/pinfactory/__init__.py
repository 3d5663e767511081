"""pinfactory: one OpenAI-compatible endpoint in front of a routed, verified, audited team."""

__version__ = "0.1.0"
