"""Keeping secrets and the agent in their place: masking values, redacting logs and errors, confining paths."""
