"""Git, hardened: the one way to run it, repositories and workspaces, capturing a diff, delivering a change."""
