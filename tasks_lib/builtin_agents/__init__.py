"""Agent files shipped with the package."""
