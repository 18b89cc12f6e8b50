"""The `arc-ttt` command line: the Typer app and its subcommands. Nothing imports this package."""
