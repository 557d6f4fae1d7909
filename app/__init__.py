"""gridmap: the command-wall map service."""
