DEFAULT_PORT = 8080


def get_port(settings):
    """The port from a settings dict."""
    return int(settings.get("port", DEFAULT_PORT))
