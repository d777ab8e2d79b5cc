"""Command-line interfaces: each module has ``main(argv=None) -> int``."""
