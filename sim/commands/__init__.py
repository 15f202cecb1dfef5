"""`fetta` subcommands: one module each, exposing HELP, add_arguments(parser), run(args)."""
