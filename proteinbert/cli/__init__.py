"""Command-line interfaces: each module has ``main(argv=None) -> int``; :mod:`.main` is the
``proteinbert`` command that dispatches to them."""
