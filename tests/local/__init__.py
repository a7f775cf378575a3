"""Tests of the local Anthropic-compatible API, driven only through the official SDK."""
