"""Test doubles shipped with the project: a scripted OpenAI-compatible server and a model answering from a list."""
