"""colorize_cli: colour for black-and-white photographs and film, from the command line."""
__version__ = "0.1.0"
