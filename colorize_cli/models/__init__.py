"""One file per model family; each registers its names with colorize_cli.registry.register_model."""
