"""mixhouse: a self-hosted analytics server that speaks Mixpanel's HTTP APIs."""

__version__ = "0.1.0"
